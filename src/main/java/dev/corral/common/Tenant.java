package dev.corral.common;

import java.util.regex.Pattern;

/**
 * The tenant a client's request acts for. Every query a request makes is scoped to it in SQL, so
 * that another tenant's resources read as if they did not exist.
 *
 * @param id 1 to 63 characters of {@code [A-Za-z0-9._-]}, starting with a letter or digit
 */
public record Tenant(String id) {

  private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");

  /** The tenant of everything made before tenants existed, and of the first admin key. */
  public static final Tenant DEFAULT = new Tenant("default");

  public Tenant {
    if (!isValid(id)) {
      throw new IllegalArgumentException("not a tenant id");
    }
  }

  public static boolean isValid(String id) {
    return id != null && ID.matcher(id).matches();
  }

  /**
   * The tenant named by {@code id}.
   *
   * @throws InvalidArgumentException naming {@code field} if it is not a valid tenant id
   */
  public static Tenant of(String field, String id) {
    if (id == null || id.isEmpty()) {
      throw new InvalidArgumentException(field, "is required");
    }
    if (!isValid(id)) {
      throw new InvalidArgumentException(
          field, "must be 1 to 63 characters of [A-Za-z0-9._-], starting with a letter or digit");
    }
    return new Tenant(id);
  }
}
