package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.common.FailedPreconditionException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.SecretKey;
import org.junit.jupiter.api.Test;

class EnvelopeTest {

  private static final byte[] SECRET = "canary-5f1c".getBytes(StandardCharsets.UTF_8);

  @Test
  void aSealedSecretOpensWithItsKeyAndHoldsNoPlaintext() {
    KeyRing keys = ring("k1");
    Envelope.Box box = Envelope.seal(keys, SECRET, "acme", "cred_1");
    assertThat(box.keyId()).isEqualTo("k1");
    assertThat(new String(box.secret(), StandardCharsets.ISO_8859_1)).doesNotContain("canary");
    assertThat(new String(box.wrappedKey(), StandardCharsets.ISO_8859_1)).doesNotContain("canary");
    assertThat(Envelope.open(keys, box, "acme", "cred_1")).isEqualTo(SECRET);
  }

  @Test
  void eachSealingUsesItsOwnDataKeyAndNonce() {
    KeyRing keys = ring("k1");
    Envelope.Box first = Envelope.seal(keys, SECRET, "acme", "cred_1");
    Envelope.Box second = Envelope.seal(keys, SECRET, "acme", "cred_1");
    assertThat(first.secret()).isNotEqualTo(second.secret());
    assertThat(first.wrappedKey()).isNotEqualTo(second.wrappedKey());
  }

  @Test
  void aSealedSecretCopiedToAnotherCredentialOrTenantDoesNotOpen() {
    KeyRing keys = ring("k1");
    Envelope.Box box = Envelope.seal(keys, SECRET, "acme", "cred_1");
    assertThatThrownBy(() -> Envelope.open(keys, box, "acme", "cred_2"))
        .isInstanceOf(FailedPreconditionException.class);
    assertThatThrownBy(() -> Envelope.open(keys, box, "globex", "cred_1"))
        .isInstanceOf(FailedPreconditionException.class);
  }

  @Test
  void aTamperedCiphertextDoesNotOpen() {
    KeyRing keys = ring("k1");
    Envelope.Box box = Envelope.seal(keys, SECRET, "acme", "cred_1");
    byte[] tampered = box.secret().clone();
    tampered[tampered.length - 1] ^= 1;
    assertThatThrownBy(
            () ->
                Envelope.open(
                    keys, new Envelope.Box("k1", box.wrappedKey(), tampered), "acme", "cred_1"))
        .isInstanceOf(FailedPreconditionException.class);
  }

  @Test
  void rewrappingMovesTheDataKeyToTheActiveKeySoTheOldOneCanGo() {
    Map<String, SecretKey> old = KeyRing.parse("k1=" + randomKey());
    Envelope.Box box = Envelope.seal(new KeyRing(old), SECRET, "acme", "cred_1");
    Map<String, SecretKey> both = new LinkedHashMap<>(KeyRing.parse("k2=" + randomKey()));
    both.putAll(old);
    Envelope.Box rewrapped = Envelope.rewrap(new KeyRing(both), box, "cred_1");
    assertThat(rewrapped.keyId()).isEqualTo("k2");
    assertThat(rewrapped.secret()).isEqualTo(box.secret());
    KeyRing onlyNew = new KeyRing(Map.of("k2", both.get("k2")));
    assertThat(Envelope.open(onlyNew, rewrapped, "acme", "cred_1")).isEqualTo(SECRET);
    assertThatThrownBy(() -> Envelope.open(onlyNew, box, "acme", "cred_1"))
        .isInstanceOf(FailedPreconditionException.class)
        .hasMessageContaining("k1 is not configured");
  }

  @Test
  void withoutAKeyNothingIsSealed() {
    KeyRing none = new KeyRing(Map.of());
    assertThat(none.configured()).isFalse();
    assertThatThrownBy(() -> Envelope.seal(none, SECRET, "acme", "cred_1"))
        .isInstanceOf(FailedPreconditionException.class)
        .hasMessageContaining("CORRAL_VAULT_KEYS");
  }

  @Test
  void malformedKeySettingsAreRefusedWithoutQuotingTheKey() {
    String key = randomKey();
    assertThatThrownBy(() -> KeyRing.parse("k1=" + key.substring(4)))
        .hasMessageContaining("needs 256")
        .hasMessageNotContaining(key.substring(4));
    assertThatThrownBy(() -> KeyRing.parse("k1=not base64!")).hasMessageContaining("not base64");
    assertThatThrownBy(() -> KeyRing.parse("k1=" + key + ",k1=" + key))
        .hasMessageContaining("twice");
    assertThatThrownBy(() -> KeyRing.parse("bad id=" + key)).hasMessageContaining("id=");
    assertThatThrownBy(() -> KeyRing.parse(key))
        .hasMessageContaining("id=")
        .hasMessageNotContaining(key.substring(0, 40));
    // a key whose base64 has no + or / looks like an id followed by "=": never quoted either
    String plain = "FYGHFb6fDjvlTxTuzLZZcg9uPyHvToPOVCfcdruHZdI=";
    assertThatThrownBy(() -> KeyRing.parse(plain))
        .hasMessageContaining("id=")
        .hasMessageNotContaining(plain.substring(0, 40));
    assertThat(KeyRing.parse("a=" + key + "\n# comment\nb=" + key).keySet())
        .containsExactly("a", "b");
  }

  private static KeyRing ring(String id) {
    return new KeyRing(KeyRing.parse(id + "=" + randomKey()));
  }

  private static String randomKey() {
    byte[] key = new byte[32];
    new SecureRandom().nextBytes(key);
    return Base64.getEncoder().encodeToString(key);
  }
}
