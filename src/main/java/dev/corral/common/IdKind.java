package dev.corral.common;

import java.security.SecureRandom;
import java.util.regex.Pattern;

/**
 * The kinds of ids corral hands out. An id is a prefix plus 26 lowercase Crockford base32
 * characters: 48 bits of milliseconds then 80 random bits, so ids sort by creation time.
 */
public enum IdKind {
  AGENT("agent_"),
  SESSION("sesn_"),
  EVENT("sevt_"),
  ENVIRONMENT("env_"),
  SANDBOX("sbx_"),
  API_KEY("key_"),
  CREDENTIAL("cred_"),
  SESSION_RESOURCE("sres_"),
  VAULT("vlt_");

  private static final char[] ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz".toCharArray();
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final int BODY_LENGTH = 26;

  private final String prefix;
  private final Pattern pattern;

  IdKind(String prefix) {
    this.prefix = prefix;
    this.pattern =
        Pattern.compile(Pattern.quote(prefix) + "[0-9a-hjkmnp-tv-z]{" + BODY_LENGTH + "}");
  }

  public String prefix() {
    return prefix;
  }

  /** A new id of this kind. */
  public String next() {
    char[] body = new char[BODY_LENGTH];
    long millis = System.currentTimeMillis();
    for (int i = 9; i >= 0; i--) {
      body[i] = ALPHABET[(int) (millis & 31)];
      millis >>>= 5;
    }
    byte[] random = new byte[10];
    RANDOM.nextBytes(random);
    long high = 0;
    long low = 0;
    for (int i = 0; i < 5; i++) {
      high = (high << 8) | (random[i] & 0xff);
      low = (low << 8) | (random[i + 5] & 0xff);
    }
    for (int i = 17; i >= 10; i--) {
      body[i] = ALPHABET[(int) (high & 31)];
      high >>>= 5;
    }
    for (int i = 25; i >= 18; i--) {
      body[i] = ALPHABET[(int) (low & 31)];
      low >>>= 5;
    }
    return prefix + new String(body);
  }

  public boolean isValid(String id) {
    return id != null && pattern.matcher(id).matches();
  }

  /**
   * Returns {@code id} if it is a well-formed id of this kind.
   *
   * @throws InvalidArgumentException naming {@code field} otherwise
   */
  public String require(String field, String id) {
    if (id == null || id.isEmpty()) {
      throw new InvalidArgumentException(field, "is required");
    }
    if (!isValid(id)) {
      throw new InvalidArgumentException(
          field, "is not a valid id: expected " + prefix + " followed by 26 base32 characters");
    }
    return id;
  }
}
