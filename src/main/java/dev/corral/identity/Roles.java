package dev.corral.identity;

import dev.corral.common.InvalidArgumentException;

/** Between {@link Role} and its corral.v1 form. */
final class Roles {

  private Roles() {}

  static dev.corral.proto.v1.Role toProto(Role role) {
    return switch (role) {
      case VIEWER -> dev.corral.proto.v1.Role.ROLE_VIEWER;
      case MEMBER -> dev.corral.proto.v1.Role.ROLE_MEMBER;
      case ADMIN -> dev.corral.proto.v1.Role.ROLE_ADMIN;
    };
  }

  static Role fromProto(String field, dev.corral.proto.v1.Role role) {
    return switch (role) {
      case ROLE_VIEWER -> Role.VIEWER;
      case ROLE_MEMBER -> Role.MEMBER;
      case ROLE_ADMIN -> Role.ADMIN;
      default -> throw new InvalidArgumentException(field, "must be VIEWER, MEMBER or ADMIN");
    };
  }
}
