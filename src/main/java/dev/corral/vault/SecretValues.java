package dev.corral.vault;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The secret values of one credential, as sealed: only the fields of its kind are set. Exists in
 * the clear only while a credential is stored or used; {@link #toString()} shows none of it.
 */
@JsonInclude(JsonInclude.Include.NON_EMPTY)
record SecretValues(
    String headerValue,
    String accessToken,
    String refreshToken,
    String clientSecret,
    String password) {

  private static final ObjectMapper JSON = new ObjectMapper();

  byte[] toBytes() {
    try {
      return JSON.writeValueAsBytes(this);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static SecretValues fromBytes(byte[] bytes) {
    try {
      return JSON.readValue(bytes, SecretValues.class);
    } catch (IOException e) {
      throw new IllegalStateException("a box credential opened to something unreadable");
    }
  }

  /** Every secret value, so that an answer quoting one can be scrubbed. */
  List<String> all() {
    List<String> values = new ArrayList<>();
    for (String value :
        new String[] {headerValue, accessToken, refreshToken, clientSecret, password}) {
      if (value != null && !value.isEmpty()) {
        values.add(value);
      }
    }
    return values;
  }

  SecretValues withTokens(String newAccessToken, String newRefreshToken) {
    return new SecretValues(
        headerValue,
        newAccessToken,
        newRefreshToken == null || newRefreshToken.isEmpty() ? refreshToken : newRefreshToken,
        clientSecret,
        password);
  }

  @Override
  public String toString() {
    return "SecretValues[redacted]";
  }
}
