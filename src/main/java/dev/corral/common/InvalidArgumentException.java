package dev.corral.common;

/** The request is malformed; {@link #field()} names the offending field. Nothing was changed. */
public class InvalidArgumentException extends CorralException {

  private final String field;

  public InvalidArgumentException(String field, String problem) {
    super(field + ": " + problem);
    this.field = field;
  }

  public String field() {
    return field;
  }
}
