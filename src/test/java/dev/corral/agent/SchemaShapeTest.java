package dev.corral.agent;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** A custom tool's input schema of a shape the Messages API would refuse is refused up front. */
class SchemaShapeTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @ParameterizedTest
  @ValueSource(
      strings = {
        "{'type':'object','properties':{'q':{'type':'string','minLength':1,'pattern':'^a'}},"
            + "'required':['q'],'additionalProperties':false}",
        "{'type':'object','properties':{'tags':{'type':'array','items':{'type':'string',"
            + "'enum':['a','b']},'maxItems':3},'n':{'type':['integer','null'],'minimum':-1.5,"
            + "'multipleOf':0.5},'x':{'anyOf':[{'type':'string'},{'$ref':'#/$defs/d'}]}},"
            + "'$defs':{'d':{'type':'object','description':'d','default':{}}}}",
        "{'type':'object','properties':{'anything':true,'nothing':false}}",
        "{'type':'object','properties':{'q':{'type':'string','maxLength':10.0,'minLength':0}}}",
        // the Messages API checks property names at the top only
        "{'type':'object','properties':{'o':{'type':'object','properties':{'a b':{}}}}}",
        "{'type':'object','properties':{'filter.id':{},'a-b_c.9':{}}}"
      })
  void schemasOfTheRightShapePass(String schema) throws Exception {
    assertThat(SchemaShape.inputProblem(JSON.readTree(schema.replace('\'', '"')))).isNull();
    assertThat(SchemaShape.acceptsAsInput(schema.replace('\'', '"'))).isTrue();
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "{'type':'object','properties':{'q':{'type':'strng'}}}|at /properties/q/type, \"strng\"",
        "{'type':'object','properties':{'q':'string'}}|at /properties/q, a schema must be",
        "{'type':'object','properties':{'q':{'type':[]}}}|at /properties/q/type",
        "{'type':'object','properties':{'q':{'type':['string','string']}}}|each once",
        "{'type':'object','properties':{'l':{'type':'array','items':[{'type':'string'}]}}}"
            + "|at /properties/l/items, a schema must be",
        "{'type':'object','properties':{'q':{'type':'string','maxLength':-1}}}"
            + "|at /properties/q/maxLength, must be a non-negative integer",
        "{'type':'object','properties':{'q':{'type':'string','maxLength':1.5}}}|maxLength",
        "{'type':'object','properties':{'n':{'type':'number','multipleOf':0}}}|greater than 0",
        "{'type':'object','properties':{'n':{'type':'number','minimum':'1'}}}|must be a number",
        "{'type':'object','required':['a','a']}|at /required",
        "{'type':'object','properties':{'x':{'anyOf':[]}}}|at /properties/x/anyOf",
        "{'type':'object','properties':{'x':{'enum':'a'}}}|at /properties/x/enum",
        "{'type':'object','properties':{'x':{'pattern':1}}}|at /properties/x/pattern",
        "{'type':'object','$defs':{'d':{'type':'objekt'}}}|at /$defs/d/type",
        "{'type':'object','anyOf':[{'required':['a']}]}|at /anyOf, the Messages API takes no",
        "{'type':'object','oneOf':[{'required':['a']},{'required':['b']}]}|at /oneOf",
        "{'type':'object','allOf':[{'required':['a']}]}|at /allOf",
        "{'type':'object','properties':{'filter[id]':{'type':'string'}}}|found \"filter[id]\"",
        "{'type':'object','properties':{'a b':{}}}|at /properties, a property name must be",
        "{'type':'object','properties':{'':{}}}|at /properties, a property name must be",
        "{'type':'object','properties':{"
            + "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa':{}}}"
            + "|at /properties, a property name must be"
      })
  void schemasOfAnotherShapeAreRefusedSayingWhere(String schema, String expected) throws Exception {
    assertThat(SchemaShape.inputProblem(JSON.readTree(schema.replace('\'', '"'))))
        .contains(expected);
    assertThat(SchemaShape.acceptsAsInput(schema.replace('\'', '"'))).isFalse();
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        // parsed as corral parses input (decimals exact): stripping these numbers' trailing zeros
        // overflowed, and the request failed as an internal error
        "{'type':'object','properties':{'x':{'type':'string','maxLength':100e2147483647}}}|",
        "{'type':'object','maxProperties':1.0e2147483647}|",
        "{'type':'object','properties':{'x':{'type':'string','maxLength':15e-1}}}"
            + "|at /properties/x/maxLength, must be a non-negative integer"
      })
  void countsOfAnyExponentAreCheckedNotThrown(String schema, String expected) {
    String problem =
        SchemaShape.inputProblem(
            dev.corral.common.Json.requireObject("input_schema_json", schema.replace('\'', '"')));
    if (expected == null) {
      assertThat(problem).isNull();
    } else {
      assertThat(problem).contains(expected);
    }
  }
}
