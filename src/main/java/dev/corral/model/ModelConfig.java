package dev.corral.model;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.Optional;

/** The Messages API the harness calls ({@code corral.model.*}). */
@ConfigMapping(prefix = "corral.model")
public interface ModelConfig {

  /** Base URL of the Messages API; {@code ANTHROPIC_BASE_URL} sets it. */
  @WithDefault("https://api.anthropic.com")
  String baseUrl();

  /** API key sent as {@code x-api-key}; {@code ANTHROPIC_API_KEY} sets it. Never logged. */
  Optional<String> apiKey();

  /** The {@code anthropic-version} header. */
  @WithDefault("2023-06-01")
  String anthropicVersion();

  /** {@code max_tokens} of every model call. */
  @WithDefault("8192")
  int maxTokens();

  /**
   * Extended thinking budget ({@code thinking.budget_tokens}); 0 turns thinking off. Must be below
   * {@code max-tokens}.
   */
  @WithDefault("0")
  int thinkingBudgetTokens();

  /** How long to wait for the response to start (status and headers). */
  @WithDefault("60s")
  Duration responseTimeout();

  /** How long a stream may go without any bytes (the API pings every few seconds). */
  @WithDefault("60s")
  Duration idleTimeout();

  /** The context window of models not named in {@code context-windows}, in tokens. */
  @WithDefault("200000")
  int contextWindowTokens();

  /**
   * The context windows of particular models, in tokens, for example {@code
   * corral.model.context-windows."claude-sonnet-4-5"=1000000}.
   */
  java.util.Map<String, Integer> contextWindows();

  /**
   * The share of its model's window a request may reach; past it the harness first compacts the
   * older history into a summary.
   */
  @WithDefault("0.8")
  double compactAt();

  /**
   * Why {@code thinking-budget-tokens} and {@code max-tokens} cannot work together (the API refuses
   * every call with a budget under 1,024 or not under max_tokens), or empty.
   */
  static Optional<String> thinkingProblem(int thinkingBudgetTokens, int maxTokens) {
    if (maxTokens < 1) {
      return Optional.of("corral.model.max-tokens is " + maxTokens + "; it must be at least 1");
    }
    if (thinkingBudgetTokens == 0) {
      return Optional.empty();
    }
    if (thinkingBudgetTokens < 1024 || thinkingBudgetTokens >= maxTokens) {
      return Optional.of(
          "corral.model.thinking-budget-tokens is "
              + thinkingBudgetTokens
              + "; it must be 0 (no thinking) or from 1024 to below corral.model.max-tokens ("
              + maxTokens
              + "), or the model's API refuses every call");
    }
    return Optional.empty();
  }

  /** The window of {@code model}, in tokens. */
  default int contextWindowOf(String model) {
    return contextWindows().getOrDefault(model, contextWindowTokens());
  }

  /** Retries of a failed call (429, 529, 5xx, cut stream) before the turn is given up. */
  @WithDefault("4")
  int maxRetries();

  /** Delay before the first retry; doubles with every attempt, with jitter. */
  @WithDefault("1s")
  Duration retryInitialBackoff();

  /** The longest delay between retries. */
  @WithDefault("30s")
  Duration retryMaxBackoff();

  /**
   * The longest wait a {@code retry-after} header may ask for before a retry (a longer one is cut
   * to this; a negative one is no wait).
   */
  @WithDefault("10m")
  Duration retryAfterMax();
}
