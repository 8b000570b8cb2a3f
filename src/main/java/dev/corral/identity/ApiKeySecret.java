package dev.corral.identity;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.regex.Pattern;

/**
 * The secret form of an API key, {@code crl_} followed by 52 lowercase base32 characters (260
 * random bits). Only its SHA-256 is stored: a key that random needs no slow hash, and the digest
 * can be looked up by index. {@link #toString()} never shows the key.
 */
public final class ApiKeySecret {

  public static final String PREFIX = "crl_";
  private static final char[] ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz".toCharArray();
  private static final int BODY_LENGTH = 52;
  private static final Pattern FORM =
      Pattern.compile(PREFIX + "[0-9a-hjkmnp-tv-z]{" + BODY_LENGTH + "}");
  private static final SecureRandom RANDOM = new SecureRandom();

  /** Characters of the key shown in lists, so that a user can tell keys apart. */
  static final int SHOWN = PREFIX.length() + 8;

  private final String value;

  private ApiKeySecret(String value) {
    this.value = value;
  }

  static ApiKeySecret generate() {
    StringBuilder key = new StringBuilder(PREFIX);
    for (int i = 0; i < BODY_LENGTH; i++) {
      key.append(ALPHABET[RANDOM.nextInt(ALPHABET.length)]);
    }
    return new ApiKeySecret(key.toString());
  }

  /** Whether {@code value} has the form of a corral API key (any such string is looked up). */
  public static boolean looksLikeKey(String value) {
    return value != null && value.startsWith(PREFIX);
  }

  /** Whether {@code value} is a well-formed key, which is checked before any lookup. */
  static boolean isWellFormed(String value) {
    return value != null && FORM.matcher(value).matches();
  }

  static ApiKeySecret of(String value) {
    return new ApiKeySecret(value);
  }

  /** The key itself: shown once, when it is created. */
  String reveal() {
    return value;
  }

  /** What lists show of the key. */
  String shownPrefix() {
    return value.substring(0, SHOWN);
  }

  /** The SHA-256 of the key: what is stored and looked up. */
  byte[] hash() {
    return sha256(value);
  }

  static byte[] sha256(String value) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(value.getBytes(StandardCharsets.UTF_8));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is missing from this JVM", e);
    }
  }

  @Override
  public String toString() {
    return "ApiKeySecret[" + shownPrefix() + "…]";
  }
}
