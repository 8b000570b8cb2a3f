package dev.corral.common;

/** A resource the request names does not exist. */
public class NotFoundException extends CorralException {

  public NotFoundException(String resource, String id) {
    super(resource + " " + id + " not found");
  }
}
