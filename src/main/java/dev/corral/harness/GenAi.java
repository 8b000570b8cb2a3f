package dev.corral.harness;

import io.opentelemetry.api.common.AttributeKey;
import java.util.List;

/**
 * The attributes of a model call's span, after OpenTelemetry's GenAI semantic conventions ({@code
 * gen_ai.*}), and corral's own beside them.
 */
final class GenAi {

  static final AttributeKey<String> SYSTEM = AttributeKey.stringKey("gen_ai.system");
  static final AttributeKey<String> OPERATION = AttributeKey.stringKey("gen_ai.operation.name");
  static final AttributeKey<String> REQUEST_MODEL = AttributeKey.stringKey("gen_ai.request.model");
  static final AttributeKey<Long> REQUEST_MAX_TOKENS =
      AttributeKey.longKey("gen_ai.request.max_tokens");
  static final AttributeKey<String> RESPONSE_ID = AttributeKey.stringKey("gen_ai.response.id");
  static final AttributeKey<List<String>> FINISH_REASONS =
      AttributeKey.stringArrayKey("gen_ai.response.finish_reasons");
  static final AttributeKey<Long> USAGE_INPUT = AttributeKey.longKey("gen_ai.usage.input_tokens");
  static final AttributeKey<Long> USAGE_OUTPUT = AttributeKey.longKey("gen_ai.usage.output_tokens");
  static final AttributeKey<Long> USAGE_CACHE_READ =
      AttributeKey.longKey("gen_ai.usage.cache_read.input_tokens");
  static final AttributeKey<Long> USAGE_CACHE_CREATION =
      AttributeKey.longKey("gen_ai.usage.cache_creation.input_tokens");
  static final AttributeKey<String> TOOL_NAME = AttributeKey.stringKey("gen_ai.tool.name");
  static final AttributeKey<String> TOOL_CALL_ID = AttributeKey.stringKey("gen_ai.tool.call.id");
  static final AttributeKey<String> ERROR_TYPE = AttributeKey.stringKey("error.type");
  static final AttributeKey<String> CORRAL_EVENT_ID = AttributeKey.stringKey("corral.event.id");
  static final AttributeKey<String> CORRAL_PURPOSE = AttributeKey.stringKey("corral.purpose");

  private GenAi() {}
}
