package dev.corral.vault;

import jakarta.enterprise.context.ApplicationScoped;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Short signatures any replica can make and check without a database: HMAC-SHA256 under a key
 * derived from a vault key-encryption key (never the key itself), tagged with that key's id so that
 * a signature outlives a rotation as long as its key stays configured. For tokens that name
 * something corral made, such as a Kubernetes sandbox's egress token.
 */
@ApplicationScoped
public class Signatures {

  private static final String LABEL = "corral signature v1\0";

  private final KeyRing keys;

  Signatures(KeyRing keys) {
    this.keys = keys;
  }

  /** Whether signatures can be made here (the vault has a key). */
  public boolean available() {
    return keys.configured();
  }

  /**
   * {@code message}'s signature under the active key: {@code <key id>.<base64url>}.
   *
   * @throws dev.corral.common.FailedPreconditionException if the vault has no key
   */
  public String sign(String message) {
    String id = keys.activeId();
    return id + "." + mac(id, message);
  }

  /** Whether {@code signature} is {@code message}'s, under any configured key. */
  public boolean verify(String message, String signature) {
    int dot = signature == null ? -1 : signature.lastIndexOf('.');
    if (dot <= 0 || !keys.configured()) {
      return false;
    }
    String id = signature.substring(0, dot);
    String expected;
    try {
      expected = mac(id, message);
    } catch (RuntimeException unknownKey) {
      return false;
    }
    return MessageDigest.isEqual(
        expected.getBytes(StandardCharsets.US_ASCII),
        signature.substring(dot + 1).getBytes(StandardCharsets.US_ASCII));
  }

  private String mac(String keyId, String message) {
    try {
      Mac derive = Mac.getInstance("HmacSHA256");
      derive.init(keys.key(keyId));
      byte[] derived = derive.doFinal(LABEL.getBytes(StandardCharsets.UTF_8));
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(derived, "HmacSHA256"));
      return Base64.getUrlEncoder()
          .withoutPadding()
          .encodeToString(mac.doFinal(message.getBytes(StandardCharsets.UTF_8)));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is unavailable", e);
    }
  }
}
