package dev.corral.vault;

import java.util.List;
import java.util.regex.Pattern;

/**
 * What one outgoing request carries for a credential: one header. For the server-side code that
 * makes the request, and only for the request it is bound to; {@link #toString()} shows no secret.
 *
 * @param secrets every secret value the credential holds, and the header's value: {@link
 *     #scrub(String)} removes them from text that came back
 */
public record HttpAuth(
    String credentialId, String headerName, String headerValue, List<String> secrets) {

  public static final String REDACTED = "[redacted]";

  public HttpAuth {
    secrets = List.copyOf(secrets);
  }

  /** {@code text} with every secret value of the credential replaced by {@code [redacted]}. */
  public String scrub(String text) {
    if (text == null) {
      return null;
    }
    String scrubbed = text;
    for (String secret : secrets) {
      if (secret.length() >= 4) {
        scrubbed = scrubbed.replace(secret, REDACTED);
      }
    }
    return scrubbed;
  }

  /** Whether {@code text} holds a secret value of the credential. */
  public boolean reveals(String text) {
    return text != null
        && secrets.stream().anyMatch(secret -> secret.length() >= 4 && text.contains(secret));
  }

  /** The access token sent, for a refresh after a 401 (empty for other kinds). */
  String bearerToken() {
    return headerValue.regionMatches(true, 0, "Bearer ", 0, 7) ? headerValue.substring(7) : "";
  }

  static final Pattern HEADER_NAME = Pattern.compile("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}");

  @Override
  public String toString() {
    return "HttpAuth[" + credentialId + ", " + headerName + ": redacted]";
  }
}
