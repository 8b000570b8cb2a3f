package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import com.google.protobuf.Timestamp;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Page;
import dev.corral.common.ProtoTime;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.ImageBlock;
import dev.corral.proto.v1.TextBlock;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/** What every shape of the API shares: times, metadata, content blocks and list pages. */
final class Shapes {

  static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  private Shapes() {}

  static ObjectNode object() {
    return NODES.objectNode();
  }

  /** RFC 3339 in UTC, or JSON null for an unset time. */
  static JsonNode time(boolean set, Timestamp time) {
    return set ? NODES.textNode(ProtoTime.toInstant(time).toString()) : NODES.nullNode();
  }

  static ObjectNode metadata(Map<String, String> metadata) {
    ObjectNode node = object();
    new java.util.TreeMap<>(metadata).forEach(node::put);
    return node;
  }

  /** {@code {"data":[…],"next_page":cursor|null}}. */
  static <T> ObjectNode page(Page<T> page, Function<T, JsonNode> shape) {
    ObjectNode node = object();
    ArrayNode data = node.putArray("data");
    page.items().forEach(item -> data.add(shape.apply(item)));
    node.set(
        "next_page",
        page.nextPageToken() == null || page.nextPageToken().isEmpty()
            ? NODES.nullNode()
            : NODES.textNode(page.nextPageToken()));
    return node;
  }

  static ArrayNode content(List<ContentBlock> blocks) {
    ArrayNode array = NODES.arrayNode();
    for (ContentBlock block : blocks) {
      switch (block.getBlockCase()) {
        case TEXT -> array.addObject().put("type", "text").put("text", block.getText().getText());
        case IMAGE -> {
          ObjectNode image = array.addObject().put("type", "image");
          ObjectNode source = image.putObject("source");
          ImageBlock body = block.getImage();
          if (body.hasUrl()) {
            source.put("type", "url").put("url", body.getUrl());
          } else {
            source
                .put("type", "base64")
                .put("media_type", body.getMediaType())
                .put("data", Base64.getEncoder().encodeToString(body.getData().toByteArray()));
          }
        }
        default -> array.addObject().put("type", "redacted");
      }
    }
    return array;
  }

  /** Content blocks of a request: text, and images by base64 or URL. */
  static List<ContentBlock> content(JsonNode node, String name, String path) {
    List<ObjectNode> blocks = Fields.objects(node, name, path);
    java.util.ArrayList<ContentBlock> content = new java.util.ArrayList<>();
    for (int i = 0; i < blocks.size(); i++) {
      ObjectNode block = blocks.get(i);
      String at = path + "[" + i + "]";
      String type = Fields.type(block, at, Set.of("text", "image"));
      if (type.equals("text")) {
        content.add(
            ContentBlock.newBuilder()
                .setText(TextBlock.newBuilder().setText(Fields.string(block, "text", at + ".text")))
                .build());
        continue;
      }
      ObjectNode source = Fields.object(block, "source", at + ".source");
      String kind = Fields.type(source, at + ".source", Set.of("base64", "url"));
      ImageBlock.Builder image = ImageBlock.newBuilder();
      if (kind.equals("url")) {
        image.setUrl(Fields.string(source, "url", at + ".source.url"));
      } else {
        image.setMediaType(Fields.string(source, "media_type", at + ".source.media_type"));
        try {
          image.setData(
              ByteString.copyFrom(
                  Base64.getDecoder().decode(Fields.string(source, "data", at + ".source.data"))));
        } catch (IllegalArgumentException e) {
          throw new InvalidArgumentException(at + ".source.data", "is not base64");
        }
      }
      content.add(ContentBlock.newBuilder().setImage(image).build());
    }
    return content;
  }

  /** A JSON text (a tool's input, a schema) as JSON, or the text itself if it is not JSON. */
  static JsonNode parsed(String json) {
    if (json == null || json.isEmpty()) {
      return object();
    }
    try {
      return RestCall.JSON.readTree(json);
    } catch (java.io.IOException | NumberFormatException | ArithmeticException e) {
      // stored as the model wrote it: JSON, but with a number no BigDecimal holds (1e2147483648)
      return NODES.textNode(json);
    }
  }
}
