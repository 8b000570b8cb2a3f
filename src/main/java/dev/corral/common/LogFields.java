package dev.corral.common;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jboss.logging.MDC;

/**
 * The fixed keys a log line about a session, a sandbox or a tool carries: {@code sessionId}, {@code
 * seq}, {@code epoch}, {@code sandbox}, {@code tool}, {@code tenant}. They are put into the logging
 * context for the one line they describe and taken out again, so that JSON logs ({@code
 * CORRAL_LOG_JSON=true}) hold them under {@code mdc} as fields an operator can query, whatever the
 * message says. Only ids and counters go here: never a payload or a secret.
 *
 * <pre>{@code
 * LogFields.session(sessionId).epoch(epoch).log(() -> LOGGER.warnf("harness stopped: %s", why));
 * }</pre>
 */
public final class LogFields {

  public static final String SESSION_ID = "sessionId";
  public static final String SEQ = "seq";
  public static final String EPOCH = "epoch";
  public static final String SANDBOX = "sandbox";
  public static final String TOOL = "tool";
  public static final String TENANT = "tenant";

  private final Map<String, Object> fields = new LinkedHashMap<>();

  private LogFields() {}

  public static LogFields session(String sessionId) {
    return new LogFields().put(SESSION_ID, sessionId);
  }

  public static LogFields sandbox(String sandboxId) {
    return new LogFields().put(SANDBOX, sandboxId);
  }

  public static LogFields tenant(String tenantId) {
    return new LogFields().put(TENANT, tenantId);
  }

  public LogFields withSession(String sessionId) {
    return put(SESSION_ID, sessionId);
  }

  public LogFields withSandbox(String sandboxId) {
    return put(SANDBOX, sandboxId);
  }

  public LogFields withTenant(String tenantId) {
    return put(TENANT, tenantId);
  }

  public LogFields epoch(long epoch) {
    return put(EPOCH, epoch);
  }

  public LogFields seq(long seq) {
    return put(SEQ, seq);
  }

  public LogFields tool(String tool) {
    return put(TOOL, tool);
  }

  private LogFields put(String key, Object value) {
    if (value != null && !(value instanceof String text && text.isEmpty())) {
      fields.put(key, value);
    }
    return this;
  }

  /** Writes one log line with these fields in its context, then restores the context. */
  public void log(Runnable line) {
    List<Object> previous = new ArrayList<>(fields.size());
    fields.forEach((key, value) -> previous.add(MDC.put(key, value)));
    try {
      line.run();
    } finally {
      int i = 0;
      for (String key : fields.keySet()) {
        Object before = previous.get(i++);
        if (before == null) {
          MDC.remove(key);
        } else {
          MDC.put(key, before);
        }
      }
    }
  }
}
