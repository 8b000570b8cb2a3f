package dev.corral.session;

import dev.corral.common.Tenant;
import io.smallrye.mutiny.Uni;
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
}
