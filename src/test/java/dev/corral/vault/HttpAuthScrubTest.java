package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/** A secret comes back from a server in many spellings; each is scrubbed. */
class HttpAuthScrubTest {

  private static final String KEY = "ab/cd+ef<12>&gh";

  private final HttpAuth auth = new HttpAuth("cred_1", "X-Api-Key", KEY, List.of(KEY));

  @Test
  void theSecretIsScrubbedAsEachCommonEncoderEscapesIt() {
    for (String echoed :
        List.of(
            KEY, // as it is
            "ab/cd+ef<12>&gh", // Jackson's JSON (nothing to escape here)
            "ab\\/cd+ef<12>&gh", // PHP's json_encode, which escapes '/'
            "ab/cd+ef\\u003c12\\u003e\\u0026gh", // Go's encoding/json, HTML-safe
            "ab%2Fcd%2Bef%3C12%3E%26gh")) { // a URL's query
      String answer = "{\"x-api-key\":\"" + echoed + "\"}";
      assertThat(auth.scrub(answer)).as(echoed).isEqualTo("{\"x-api-key\":\"[redacted]\"}");
    }
  }
}
