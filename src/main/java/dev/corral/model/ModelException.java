package dev.corral.model;

import java.time.Duration;
import java.util.Optional;

/**
 * A model call that failed, classified for the retry policy.
 *
 * @param errorType the API's error type (overloaded_error, rate_limit_error, ...) or ours
 *     (stream_cut, timeout, connection_error)
 */
public class ModelException extends RuntimeException {

  private final int status;
  private final String errorType;
  private final boolean retryable;
  private final Duration retryAfter;

  public ModelException(
      int status, String errorType, String message, boolean retryable, Duration retryAfter) {
    super(message, null, false, false);
    this.status = status;
    this.errorType = errorType;
    this.retryable = retryable;
    this.retryAfter = retryAfter;
  }

  /** An HTTP error answer of the API. */
  static ModelException fromStatus(
      int status, String errorType, String message, Duration retryAfter) {
    boolean retryable =
        status == 408
            || status == 409
            || status == 429
            || status >= 500
            // the request can be made smaller: the harness compacts or cuts it on the next try
            || (status == 400 && promptTooLong(message));
    return new ModelException(status, errorType, message, retryable, retryAfter);
  }

  /**
   * The API's two refusals of a request too large for the window: the prompt alone, or the prompt
   * with {@code max_tokens} ("input length and `max_tokens` exceed context limit: 188240 + 21333 >
   * 200000"); each names the prompt's tokens.
   */
  private static final java.util.regex.Pattern PROMPT_TOO_LONG =
      java.util.regex.Pattern.compile(
          "prompt is too long(?:: (\\d{1,12}) tokens)?"
              + "|input length and `?max_tokens`? exceed context limit: (\\d{1,12}) \\+");

  private static boolean promptTooLong(String message) {
    return message != null && PROMPT_TOO_LONG.matcher(message).find();
  }

  /** Whether the API refused the request as larger than the model's window. */
  public boolean promptTooLong() {
    return status == 400 && promptTooLong(getMessage());
  }

  /**
   * Whether the API refused the request for what its messages hold: sent again as it is, it is
   * refused again, and only leaving that content out helps. That is a 413, a prompt too long, or an
   * invalid request whose message points into the messages or at an image or document ("Could not
   * process image", "messages.3.content.1.image.source: ..."). An invalid request about the account
   * ("Your credit balance is too low"), the model or the agent's configuration ({@code max_tokens},
   * {@code tools.0...}, {@code thinking}) is not: forgetting the user's input would not help it.
   */
  public boolean inputRefused() {
    if (status == 413 || promptTooLong()) {
      return true;
    }
    boolean invalid = status == 400 || (status == 200 && "invalid_request_error".equals(errorType));
    return invalid && getMessage() != null && CONTENT.matcher(getMessage()).find();
  }

  private static final java.util.regex.Pattern CONTENT =
      java.util.regex.Pattern.compile(
          // (the message starts with "HTTP 400 invalid_request_error: " before the API's own)
          "(?i)(?:^|:\\s)messages\\.\\d|\\bimages?\\b|\\bdocuments?\\b|\\bbase64\\b|\\bmedia[ _]type\\b"
              + "|unable to download");

  /** The tokens the API counted in a request it refused as too long, if it said. */
  public Optional<Long> promptTokens() {
    var matcher = PROMPT_TOO_LONG.matcher(String.valueOf(getMessage()));
    if (!matcher.find()) {
      return Optional.empty();
    }
    String tokens = matcher.group(1) != null ? matcher.group(1) : matcher.group(2);
    return tokens == null ? Optional.empty() : Optional.of(Long.parseLong(tokens));
  }

  /** An {@code error} event in the middle of a stream. */
  static ModelException fromStreamError(String errorType, String message) {
    boolean retryable =
        "overloaded_error".equals(errorType)
            || "api_error".equals(errorType)
            || "rate_limit_error".equals(errorType);
    return new ModelException(200, errorType, message, retryable, null);
  }

  /** The connection failed or the stream ended early: always worth another attempt. */
  static ModelException transport(String errorType, String message) {
    return new ModelException(0, errorType, message, true, null);
  }

  /** The HTTP status, 200 for an error inside a stream, 0 for a transport failure. */
  public int status() {
    return status;
  }

  public String errorType() {
    return errorType;
  }

  public boolean retryable() {
    return retryable;
  }

  public Optional<Duration> retryAfter() {
    return Optional.ofNullable(retryAfter);
  }

  /** The session.error type of Claude Managed Agents for this failure. */
  public String sessionErrorType() {
    return switch (errorType) {
      case "overloaded_error" -> "model_overloaded_error";
      case "rate_limit_error" -> "model_rate_limited_error";
      default -> "model_request_failed_error";
    };
  }
}
