package dev.corral.agent;

import dev.corral.proto.v1.Environment;

/**
 * What this server will run, checked when an environment is created or changed, so that a client
 * learns at once that its environment asks for more than the operator allows rather than at its
 * first sandbox. The sandbox layer implements it (the ceilings and pod policy are its settings).
 */
public interface EnvironmentAdmission {

  /**
   * Checks what {@code next} sets anew against {@code previous} (the default instance on create): a
   * value an environment already had when the operator tightened a setting is refused when a
   * sandbox is provisioned, not when another field of the environment changes.
   *
   * @throws dev.corral.common.InvalidArgumentException naming the refused field
   */
  void check(Environment previous, Environment next);
}
