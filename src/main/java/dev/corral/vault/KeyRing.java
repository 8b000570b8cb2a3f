package dev.corral.vault;

import dev.corral.common.FailedPreconditionException;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import javax.crypto.SecretKey;
import javax.crypto.spec.SecretKeySpec;

/**
 * The key-encryption keys this replica holds, from {@code corral.vault.keys} or its file. Read once
 * at start; a malformed setting stops the server rather than sealing secrets under a key it did not
 * mean. The keys never reach the database.
 */
@ApplicationScoped
public class KeyRing {

  private static final Pattern ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");

  private final Map<String, SecretKey> keys;
  private final String activeId;

  @jakarta.inject.Inject
  KeyRing(VaultConfig config) {
    this(parse(source(config)));
  }

  KeyRing(Map<String, SecretKey> keys) {
    this.keys = Map.copyOf(keys);
    this.activeId = keys.isEmpty() ? null : keys.keySet().iterator().next();
  }

  /** Whether a key-encryption key is configured. */
  public boolean configured() {
    return activeId != null;
  }

  /** The id of the key that wraps new data keys. */
  String activeId() {
    requireConfigured();
    return activeId;
  }

  SecretKey active() {
    requireConfigured();
    return keys.get(activeId);
  }

  /**
   * The key {@code id}.
   *
   * @throws FailedPreconditionException if this replica does not hold it
   */
  SecretKey key(String id) {
    requireConfigured();
    SecretKey key = keys.get(id);
    if (key == null) {
      throw new FailedPreconditionException(
          "the vault's key-encryption key "
              + id
              + " is not configured on this replica (CORRAL_VAULT_KEYS)");
    }
    return key;
  }

  void requireConfigured() {
    if (activeId == null) {
      throw new FailedPreconditionException(
          "the vault has no key-encryption key: set CORRAL_VAULT_KEYS (or CORRAL_VAULT_KEYS_FILE)"
              + " to id=<256-bit key in base64>");
    }
  }

  private static String source(VaultConfig config) {
    if (config.keys().isPresent() && !config.keys().get().isBlank()) {
      return config.keys().get();
    }
    if (config.keysFile().isPresent()) {
      try {
        return String.join(",", Files.readAllLines(config.keysFile().get()));
      } catch (IOException e) {
        throw new UncheckedIOException(
            "cannot read corral.vault.keys-file " + config.keysFile().get(), e);
      }
    }
    return "";
  }

  /** {@code id=base64,…} (commas or line breaks between entries) as keys in their order. */
  static Map<String, SecretKey> parse(String setting) {
    Map<String, SecretKey> keys = new LinkedHashMap<>();
    List<String> entries = new ArrayList<>();
    for (String entry : setting.split("[,\\n]")) {
      if (!entry.isBlank() && !entry.strip().startsWith("#")) {
        entries.add(entry.strip());
      }
    }
    for (String entry : entries) {
      int equals = entry.indexOf('=');
      String id = equals < 0 ? "" : entry.substring(0, equals).strip();
      // A key pasted without its id ends in base64's "=" padding: it must not be taken (and
      // quoted in the error) as an id with an empty key.
      if (!ID.matcher(id).matches() || entry.substring(equals + 1).isBlank()) {
        throw new IllegalArgumentException(
            "corral.vault.keys: every entry must be id=<base64 key> with an id of"
                + " [A-Za-z0-9._-]{1,64}");
      }
      byte[] key = decode(id, entry.substring(equals + 1).strip());
      if (keys.put(id, new SecretKeySpec(key, "AES")) != null) {
        throw new IllegalArgumentException("corral.vault.keys: key id " + id + " appears twice");
      }
    }
    return keys;
  }

  private static byte[] decode(String id, String base64) {
    byte[] key;
    try {
      key = Base64.getDecoder().decode(base64);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("corral.vault.keys: key " + id + " is not base64");
    }
    if (key.length != 32) {
      throw new IllegalArgumentException(
          "corral.vault.keys: key " + id + " has " + key.length * 8 + " bits; it needs 256");
    }
    return key;
  }
}
