package dev.corral.model;

/** Sees a response while it streams, for live previews. Called on the client's event loop. */
public interface StreamListener {

  /**
   * A block starts at {@code index}; {@code type} is text, thinking, redacted_thinking or tool_use.
   */
  void blockStarted(int index, String type);

  /** More text of the text block at {@code index}. */
  void textDelta(int index, String text);

  StreamListener NONE =
      new StreamListener() {
        @Override
        public void blockStarted(int index, String type) {}

        @Override
        public void textDelta(int index, String text) {}
      };
}
