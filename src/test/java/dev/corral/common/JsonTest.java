package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class JsonTest {

  @Test
  void aNumberWhoseExponentIsOutOfRangeIsTheCallersMistakeNamedByField() {
    for (String text :
        new String[] {
          "{\"n\":1e2147483648}", "{\"n\":1.0e-2147483647}", "{\"a\":[1,{\"b\":9E9999999999}]}"
        }) {
      assertThatThrownBy(() -> Json.requireObject("input_json", text))
          .as(text)
          .isInstanceOfSatisfying(
              InvalidArgumentException.class, e -> assertThat(e.field()).isEqualTo("input_json"));
    }
  }

  @Test
  void aHugeExponentThatParsesCostsNothingToCheckAsAnInteger() {
    // 1e100000000 is 11 characters: as a BigDecimal it is cheap, as an integer 100 million digits
    var node = Json.requireObject("input_json", "{\"n\":1e100000000}").get("n");

    assertThat(node.canConvertToLong()).isFalse();
    assertThat(node.canConvertToInt()).isFalse();
  }

  @Test
  void halfASurrogatePairAnywhereIsRefusedNamingWhereButAWholePairIsText() {
    String[][] cases = {
      {"{\"a\":\"x\\ud800\"}", "input_json.a"},
      {"{\"a\":[\"ok\",\"\\udc00y\"]}", "input_json.a[1]"},
      {"{\"k\\ud83d\":1}", "input_json.k\\ud83d"},
      {"{\"a\":{\"b\":\"\\ude00\\ud83d\"}}", "input_json.a.b"}
    };
    for (String[] refused : cases) {
      assertThatThrownBy(() -> Json.requireObject("input_json", refused[0]))
          .as(refused[0])
          .isInstanceOfSatisfying(
              InvalidArgumentException.class,
              e -> {
                assertThat(e.field()).isEqualTo(refused[1]);
                assertThat(e.getMessage()).contains("surrogate pair");
              });
    }

    assertThat(Json.requireObject("f", "{\"a\":\"\\ud83d\\ude00 \ud83d\ude00\"}").get("a").asText())
        .isEqualTo("\ud83d\ude00 \ud83d\ude00");
  }

  @Test
  void aCutNeverSplitsASurrogatePair() {
    String text = "ab\ud83d\ude00cd";

    assertThat(Json.cut(text, 3)).isEqualTo("ab");
    assertThat(Json.cut(text, 4)).isEqualTo("ab\ud83d\ude00");
    assertThat(Json.cut(text, 10)).isEqualTo(text);
  }

  @Test
  void everyHalfPairInATreeIsReplacedKeysIncludedAndWholePairsKept() throws Exception {
    com.fasterxml.jackson.databind.JsonNode tree =
        new com.fasterxml.jackson.databind.ObjectMapper()
            .readTree("{\"k\\ud800\":[\"x\\udc00\",{\"y\":\"\\ud83d\\ude00\"}],\"z\":1}");

    Json.withWholePairs(tree);

    assertThat(tree.toString())
        .isEqualTo("{\"z\":1,\"k\ufffd\":[\"x\ufffd\",{\"y\":\"\ud83d\ude00\"}]}");
  }
}
