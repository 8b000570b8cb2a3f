package dev.corral.common;

/** The request is malformed; {@link #field()} names the offending field. Nothing was changed. */
public class InvalidArgumentException extends CorralException {

  private final String field;
  private final String problem;

  public InvalidArgumentException(String field, String problem) {
    super(field + ": " + problem);
    this.field = field;
    this.problem = problem;
  }

  public String field() {
    return field;
  }

  /** What is wrong with the field, without its name. */
  public String problem() {
    return problem;
  }
}
