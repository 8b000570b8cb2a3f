package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class PagingTest {

  @Test
  void pageSizeDefaultsAndRefusesWhatIsOutOfRange() {
    assertThat(Paging.pageSize("page_size", 0, 20, 100)).isEqualTo(20);
    assertThat(Paging.pageSize("page_size", 100, 20, 100)).isEqualTo(100);
    assertThatThrownBy(() -> Paging.pageSize("page_size", 101, 20, 100))
        .hasMessageContaining("between 0 and 100");
    assertThatThrownBy(() -> Paging.pageSize("page_size", -1, 20, 100))
        .isInstanceOf(InvalidArgumentException.class);
  }

  @Test
  void tokenRoundTripsAndForgedTokensAreRefused() {
    String id = IdKind.SESSION.next();
    assertThat(Paging.keyOf("page_token", Paging.token(id), IdKind.SESSION::isValid)).isEqualTo(id);
    assertThat(Paging.keyOf("page_token", "", IdKind.SESSION::isValid)).isNull();
    assertThatThrownBy(() -> Paging.keyOf("page_token", "%%%", IdKind.SESSION::isValid))
        .hasMessageStartingWith("page_token:");
    assertThatThrownBy(
            () ->
                Paging.keyOf(
                    "page_token", Paging.token(IdKind.AGENT.next()), IdKind.SESSION::isValid))
        .hasMessageStartingWith("page_token:");
  }

  @Test
  void pageOfSizePlusOneRowsHasANextToken() {
    Page<String> full = Page.of(List.of("c", "b", "a"), 2, key -> key);
    Page<String> last = Page.of(List.of("a"), 2, key -> key);

    assertThat(full.items()).containsExactly("c", "b");
    assertThat(Paging.keyOf("t", full.nextPageToken(), key -> true)).isEqualTo("b");
    assertThat(last.nextPageToken()).isEmpty();
  }

  @Test
  void aPageOfLargeItemsStopsAtItsByteBudgetButHoldsAtLeastOne() {
    // Given ten items of 300 KB each, and one of 2 MB
    List<dev.corral.proto.v1.TextBlock> rows = new java.util.ArrayList<>();
    for (int i = 0; i < 10; i++) {
      rows.add(dev.corral.proto.v1.TextBlock.newBuilder().setText(i + "x".repeat(300_000)).build());
    }
    var huge = dev.corral.proto.v1.TextBlock.newBuilder().setText("h".repeat(2_000_000)).build();

    // When pages of up to 20 are made of them
    Page<dev.corral.proto.v1.TextBlock> page =
        Page.of(rows, 20, block -> block.getText().substring(0, 1));
    Page<dev.corral.proto.v1.TextBlock> alone =
        Page.of(List.of(huge, rows.get(0)), 20, block -> "h");

    // Then a page holds what fits its budget, and says where the next starts
    assertThat(page.items()).hasSize(3);
    assertThat(page.nextPageToken()).isEqualTo(Paging.token("2"));
    assertThat(alone.items()).containsExactly(huge);
    assertThat(alone.nextPageToken()).isNotEmpty();
  }
}
