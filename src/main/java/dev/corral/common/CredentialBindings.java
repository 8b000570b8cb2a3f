package dev.corral.common;

import io.smallrye.mutiny.Uni;

/**
 * Whether a credential that an agent or a session resource names may be used for a URL. The vault
 * domain provides it, so that agents and sessions know no credential record, and a definition that
 * names a credential it could never use is refused when it is made rather than at its first call.
 */
public interface CredentialBindings {

  /**
   * @throws NotFoundException (in the Uni) if {@code tenant} has no credential {@code credentialId}
   * @throws InvalidArgumentException (in the Uni) naming {@code field} if the credential is bound
   *     to another URL or host than {@code url}'s, or is not of a kind {@code use} takes
   */
  Uni<Void> requireBound(
      Tenant tenant, String field, String credentialId, String url, CredentialUse use);
}
