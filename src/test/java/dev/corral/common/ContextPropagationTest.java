package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;

import io.quarkus.test.junit.QuarkusTest;
import io.smallrye.context.SmallRyeThreadContext;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Mutiny wraps every operator's function with the default thread context: corral configures it to
 * propagate nothing, so that the wrapping is the function itself and costs nothing per item.
 */
@QuarkusTest
class ContextPropagationTest {

  @Test
  void mutinyOperatorsRunWithoutCapturingContexts() {
    Function<String, Integer> function = String::length;

    Function<String, Integer> wrapped =
        SmallRyeThreadContext.getCurrentThreadContextOrDefaultContexts()
            .contextualFunction(function);

    assertThat(wrapped).isSameAs(function);
  }
}
