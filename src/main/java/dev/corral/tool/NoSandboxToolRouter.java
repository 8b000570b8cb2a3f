package dev.corral.tool;

import io.quarkus.arc.DefaultBean;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;

/**
 * The router of a corral without a sandbox driver: every built-in call gets a clear tool error, so
 * that the model knows and the session goes on.
 */
@DefaultBean
@ApplicationScoped
public class NoSandboxToolRouter implements ToolRouter {

  @Override
  public Uni<ToolOutcome> execute(ToolCall call) {
    if (BuiltInTool.named(call.name()).isEmpty()) {
      return Uni.createFrom()
          .item(ToolOutcome.error("There is no tool named '" + call.name() + "'."));
    }
    return Uni.createFrom()
        .item(
            ToolOutcome.error(
                "The "
                    + call.name()
                    + " tool needs a sandbox, and this corral has no sandbox driver configured."));
  }
}
