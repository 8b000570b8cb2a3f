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
        "{'type':'object','properties':{'q':{'type':'string','maxLength':10.0,'minLength':0}}}"
      })
  void schemasOfTheRightShapePass(String schema) throws Exception {
    assertThat(SchemaShape.problem(JSON.readTree(schema.replace('\'', '"')), "")).isNull();
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
        "{'type':'object','$defs':{'d':{'type':'objekt'}}}|at /$defs/d/type"
      })
  void schemasOfAnotherShapeAreRefusedSayingWhere(String schema, String expected) throws Exception {
    assertThat(SchemaShape.problem(JSON.readTree(schema.replace('\'', '"')), ""))
        .contains(expected);
  }
}
