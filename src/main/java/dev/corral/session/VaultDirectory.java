package dev.corral.session;

import dev.corral.common.IdKind;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Tenant;
import io.smallrye.mutiny.Uni;
import java.util.HashSet;
import java.util.List;

/**
 * Whether vaults a session names exist for its tenant and may be used. The vault domain provides
 * it, so that sessions know no vault record.
 */
public interface VaultDirectory {

  /**
   * @throws dev.corral.common.InvalidArgumentException (in the Uni) naming {@code field}
   * @throws dev.corral.common.NotFoundException (in the Uni) for a vault that is not usable
   */
  Uni<Void> requireUsable(Tenant tenant, String field, List<String> vaultIds);

  /** The most vaults a session may name. */
  int MAX_PER_SESSION = 16;

  /**
   * {@code vaultIds} if they are vault ids, none named twice, and at most {@link #MAX_PER_SESSION}
   * of them; else throws {@link InvalidArgumentException} naming {@code field}.
   */
  static List<String> checkIds(String field, List<String> vaultIds) {
    if (vaultIds.size() > MAX_PER_SESSION) {
      throw new InvalidArgumentException(
          field, "names " + vaultIds.size() + " vaults; at most " + MAX_PER_SESSION);
    }
    var seen = new HashSet<String>();
    for (int i = 0; i < vaultIds.size(); i++) {
      IdKind.VAULT.require(field + "[" + i + "]", vaultIds.get(i));
      if (!seen.add(vaultIds.get(i))) {
        throw new InvalidArgumentException(field + "[" + i + "]", "is named twice");
      }
    }
    return vaultIds;
  }
}
