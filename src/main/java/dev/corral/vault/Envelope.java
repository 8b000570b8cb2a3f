package dev.corral.vault;

import dev.corral.common.FailedPreconditionException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Envelope encryption of one credential's secret: the secret is sealed with AES-256-GCM under a
 * data key of its own, and the data key is sealed (wrapped) with AES-256-GCM under the active
 * key-encryption key. Each ciphertext is bound, as authenticated data, to the credential and tenant
 * it belongs to, so that a sealed secret copied onto another row does not open.
 */
final class Envelope {

  private static final SecureRandom RANDOM = new SecureRandom();
  private static final int NONCE_BYTES = 12;
  private static final int TAG_BITS = 128;

  private Envelope() {}

  /**
   * A sealed secret: the id of the key-encryption key, the wrapped data key and the sealed secret
   * (each its nonce followed by the ciphertext and tag).
   */
  record Box(String keyId, byte[] wrappedKey, byte[] secret) {}

  static Box seal(KeyRing keys, byte[] plaintext, String tenantId, String credentialId) {
    byte[] dataKey = new byte[32];
    RANDOM.nextBytes(dataKey);
    try {
      String keyId = keys.activeId();
      byte[] secret =
          encrypt(
              new SecretKeySpec(dataKey, "AES"), plaintext, secretContext(tenantId, credentialId));
      byte[] wrapped = encrypt(keys.active(), dataKey, keyContext(keyId, credentialId));
      return new Box(keyId, wrapped, secret);
    } finally {
      Arrays.fill(dataKey, (byte) 0);
    }
  }

  /** The secret's plaintext; the caller clears it once used. */
  static byte[] open(KeyRing keys, Box box, String tenantId, String credentialId) {
    byte[] dataKey =
        decrypt(keys.key(box.keyId()), box.wrappedKey(), keyContext(box.keyId(), credentialId));
    try {
      return decrypt(
          new SecretKeySpec(dataKey, "AES"), box.secret(), secretContext(tenantId, credentialId));
    } finally {
      Arrays.fill(dataKey, (byte) 0);
    }
  }

  /** The same secret with its data key wrapped by the active key-encryption key. */
  static Box rewrap(KeyRing keys, Box box, String credentialId) {
    byte[] dataKey =
        decrypt(keys.key(box.keyId()), box.wrappedKey(), keyContext(box.keyId(), credentialId));
    try {
      String keyId = keys.activeId();
      return new Box(
          keyId, encrypt(keys.active(), dataKey, keyContext(keyId, credentialId)), box.secret());
    } finally {
      Arrays.fill(dataKey, (byte) 0);
    }
  }

  private static byte[] secretContext(String tenantId, String credentialId) {
    return ("corral/credential/v1|" + tenantId + "|" + credentialId)
        .getBytes(StandardCharsets.UTF_8);
  }

  private static byte[] keyContext(String keyId, String credentialId) {
    return ("corral/data-key/v1|" + keyId + "|" + credentialId).getBytes(StandardCharsets.UTF_8);
  }

  private static byte[] encrypt(SecretKey key, byte[] plaintext, byte[] context) {
    byte[] nonce = new byte[NONCE_BYTES];
    RANDOM.nextBytes(nonce);
    try {
      Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
      cipher.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, nonce));
      cipher.updateAAD(context);
      byte[] box = cipher.doFinal(plaintext);
      return ByteBuffer.allocate(NONCE_BYTES + box.length).put(nonce).put(box).array();
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("AES-GCM is not available", e);
    }
  }

  private static byte[] decrypt(SecretKey key, byte[] box, byte[] context) {
    try {
      Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
      cipher.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, box, 0, NONCE_BYTES));
      cipher.updateAAD(context);
      return cipher.doFinal(box, NONCE_BYTES, box.length - NONCE_BYTES);
    } catch (javax.crypto.AEADBadTagException e) {
      throw new FailedPreconditionException(
          "a box credential does not open with its key: the key-encryption key or the stored"
              + " data is not the one it was box with");
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("AES-GCM is not available", e);
    }
  }
}
