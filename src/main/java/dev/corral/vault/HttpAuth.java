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

  /**
   * {@code text} with every secret value of the credential replaced by {@code [redacted]}, as it is
   * and as it reads once escaped in a JSON string or percent-encoded in a URL. Scrub a text before
   * cutting it: a cut through a secret leaves a part of it that no longer matches.
   */
  public String scrub(String text) {
    if (text == null) {
      return null;
    }
    String scrubbed = text;
    for (String form : forms()) {
      scrubbed = scrubbed.replace(form, REDACTED);
    }
    return scrubbed;
  }

  /** Whether {@code text} holds a secret value of the credential, in any form scrubbed. */
  public boolean reveals(String text) {
    return text != null && forms().stream().anyMatch(text::contains);
  }

  /** The longest form of a secret value {@link #scrub} looks for (0 if none). */
  public int longestForm() {
    return forms().stream().mapToInt(String::length).max().orElse(0);
  }

  /** Each secret value long enough to look for, in each form it may come back in. */
  private List<String> forms() {
    java.util.LinkedHashSet<String> forms = new java.util.LinkedHashSet<>();
    for (String secret : secrets) {
      if (secret.length() < 4) {
        continue;
      }
      forms.add(secret);
      String json = new String(JSON_STRING.quoteAsString(secret));
      forms.add(json);
      // other encoders' JSON: PHP escapes '/', Go's HTML-safe escaping '&', '<' and '>'
      forms.add(json.replace("/", "\\/"));
      forms.add(json.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"));
      forms.add(java.net.URLEncoder.encode(secret, java.nio.charset.StandardCharsets.UTF_8));
      forms.add(
          java.net.URLEncoder.encode(secret, java.nio.charset.StandardCharsets.UTF_8)
              .replace("+", "%20"));
    }
    // the longest first, so that no shorter form leaves a part of a longer one behind
    return forms.stream()
        .sorted(java.util.Comparator.comparingInt(String::length).reversed())
        .toList();
  }

  private static final com.fasterxml.jackson.core.io.JsonStringEncoder JSON_STRING =
      com.fasterxml.jackson.core.io.JsonStringEncoder.getInstance();

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
