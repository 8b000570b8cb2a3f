package dev.corral.vault;

import io.smallrye.config.ConfigMapping;
import java.nio.file.Path;
import java.util.Optional;

/** The vault's key-encryption keys ({@code corral.vault.*}). */
@ConfigMapping(prefix = "corral.vault")
public interface VaultConfig {

  /**
   * Key-encryption keys, {@code id=base64,id=base64,…}: each a 256-bit AES key in base64 under an
   * id of {@code [A-Za-z0-9._-]}. The first wraps new data keys; the others only unwrap old ones.
   * Without any key the vault refuses every change (FAILED_PRECONDITION).
   */
  Optional<String> keys();

  /**
   * A file holding the keys (one {@code id=base64} per line, the active one first), such as a
   * mounted Kubernetes Secret. Used when {@link #keys()} is not set.
   */
  Optional<Path> keysFile();
}
