package dev.corral.testing;

import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StreamEventsRequest;
import dev.corral.proto.v1.StreamEventsResponse;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Records what a StreamEvents call delivers. With {@code initialRequest} > 0 the recorder asks for
 * messages only when told to ({@link #request}), like a slow client.
 */
public final class StreamRecorder
    implements ClientResponseObserver<StreamEventsRequest, StreamEventsResponse> {

  private final List<StreamEventsResponse> items = new CopyOnWriteArrayList<>();
  private final AtomicReference<Status> closed = new AtomicReference<>();
  private final int initialRequest;
  private volatile ClientCallStreamObserver<StreamEventsRequest> call;

  private StreamRecorder(int initialRequest) {
    this.initialRequest = initialRequest;
  }

  /** Starts a stream that takes messages as fast as they come. */
  public static StreamRecorder follow(Channel channel, StreamEventsRequest request) {
    return start(channel, request, 0);
  }

  /**
   * Starts a stream that takes {@code initialRequest} messages, then waits for {@link #request}.
   */
  public static StreamRecorder followSlowly(
      Channel channel, StreamEventsRequest request, int initialRequest) {
    return start(channel, request, initialRequest);
  }

  private static StreamRecorder start(
      Channel channel, StreamEventsRequest request, int initialRequest) {
    StreamRecorder recorder = new StreamRecorder(initialRequest);
    SessionServiceGrpc.newStub(channel).streamEvents(request, recorder);
    return recorder;
  }

  @Override
  public void beforeStart(ClientCallStreamObserver<StreamEventsRequest> call) {
    this.call = call;
    if (initialRequest > 0) {
      call.disableAutoRequestWithInitial(initialRequest);
    }
  }

  public void request(int count) {
    call.request(count);
  }

  public void cancel() {
    call.cancel("test is done", null);
  }

  @Override
  public void onNext(StreamEventsResponse item) {
    items.add(item);
  }

  @Override
  public void onError(Throwable failure) {
    closed.set(Status.fromThrowable(failure));
  }

  @Override
  public void onCompleted() {
    closed.set(Status.OK);
  }

  public List<StreamEventsResponse> items() {
    return new ArrayList<>(items);
  }

  public List<Event> events() {
    return items.stream()
        .filter(StreamEventsResponse::hasEvent)
        .map(StreamEventsResponse::getEvent)
        .toList();
  }

  public List<Long> seqs() {
    return events().stream().map(Event::getSeq).toList();
  }

  /** The status the call ended with, or null while it runs. */
  public Status closedWith() {
    return closed.get();
  }
}
