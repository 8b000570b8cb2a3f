package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.quarkus.test.junit.QuarkusTest;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * The embedded PostgreSQL listens on a port every local user can reach; only a client that knows
 * its password gets in.
 */
@QuarkusTest
class EmbeddedDatabaseAccessTest {

  @Test
  void aLocalUserWithoutThePasswordCannotLogIn() throws SQLException {
    // Given the embedded server the tests run on
    String url = ConfigProvider.getConfig().getValue("quarkus.datasource.jdbc.url", String.class);
    String password =
        ConfigProvider.getConfig().getValue("quarkus.datasource.password", String.class);
    assertThat(url).startsWith("jdbc:postgresql://127.0.0.1:");

    // When another local user connects as its superuser without the password, or with a guess
    // Then it is refused
    assertThatThrownBy(() -> DriverManager.getConnection(url, login(null)).close())
        .isInstanceOf(SQLException.class)
        .hasMessageContaining("password");
    assertThatThrownBy(() -> DriverManager.getConnection(url, login("postgres")).close())
        .isInstanceOf(SQLException.class)
        .hasMessageContaining("password authentication failed");

    // And corral's own password gets in
    try (Connection connection = DriverManager.getConnection(url, login(password));
        ResultSet row = connection.createStatement().executeQuery("SELECT current_user")) {
      row.next();
      assertThat(row.getString(1)).isEqualTo("postgres");
    }
  }

  private static Properties login(String password) {
    Properties properties = new Properties();
    properties.setProperty("user", "postgres");
    if (password != null) {
      properties.setProperty("password", password);
    }
    return properties;
  }
}
