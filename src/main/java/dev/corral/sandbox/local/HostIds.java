package dev.corral.sandbox.local;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;

/**
 * The user and group ids the host has given out: its users' and groups' ids ({@code /etc/passwd},
 * {@code /etc/group}) and the ranges of subordinate ids its users may map into namespaces of their
 * own ({@code /etc/subuid}, {@code /etc/subgid}, 65,536 each from 100,000 by default). A sandbox
 * must run as none of them: a user of the host who holds a sandbox's id (a rootless container
 * runtime needs nothing more) could read its files through {@code /proc/<pid>/root}, signal or
 * trace its processes, and use its way out. The files are read again when one of them changes.
 */
final class HostIds {

  private final List<Path> users;
  private final List<Path> groups;
  private final List<Path> subordinates;
  private List<FileTime> readAt = List.of();
  private List<long[]> taken = List.of();

  HostIds() {
    this(
        List.of(Path.of("/etc/passwd")),
        List.of(Path.of("/etc/group")),
        List.of(Path.of("/etc/subuid"), Path.of("/etc/subgid")));
  }

  HostIds(List<Path> users, List<Path> groups, List<Path> subordinates) {
    this.users = users;
    this.groups = groups;
    this.subordinates = subordinates;
  }

  /**
   * Whether an id is a user's, a group's, or within a user's subordinate ids, as the files say now
   * (read again if one changed): one reading, to test many ids against.
   */
  synchronized java.util.function.LongPredicate now() {
    refresh();
    List<long[]> ranges = taken;
    return id -> {
      for (long[] range : ranges) {
        if (id >= range[0] && id < range[1]) {
          return true;
        }
      }
      return false;
    };
  }

  private void refresh() {
    List<FileTime> times = new ArrayList<>();
    for (Path file : all()) {
      times.add(modified(file));
    }
    if (times.equals(readAt)) {
      return;
    }
    List<long[]> ranges = new ArrayList<>();
    users.forEach(file -> ids(file, ranges, 2, 3)); // name:x:uid:gid:...
    groups.forEach(file -> ids(file, ranges, 2)); // name:x:gid:members
    for (Path file : subordinates) { // name:start:count
      for (String[] fields : lines(file)) {
        Long start = number(fields, 1);
        Long count = number(fields, 2);
        if (start != null && count != null) {
          ranges.add(new long[] {start, start + count});
        }
      }
    }
    taken = ranges;
    readAt = times;
  }

  private List<Path> all() {
    List<Path> files = new ArrayList<>(users);
    files.addAll(groups);
    files.addAll(subordinates);
    return files;
  }

  private static void ids(Path file, List<long[]> ranges, int... idFields) {
    for (String[] fields : lines(file)) {
      for (int field : idFields) {
        Long id = number(fields, field);
        if (id != null) {
          ranges.add(new long[] {id, id + 1});
        }
      }
    }
  }

  private static List<String[]> lines(Path file) {
    List<String[]> lines = new ArrayList<>();
    try {
      for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
        if (!line.isBlank() && !line.startsWith("#")) {
          lines.add(line.split(":", -1));
        }
      }
    } catch (IOException | java.io.UncheckedIOException absent) {
      // a host without the file has given out none of those ids
    }
    return lines;
  }

  private static Long number(String[] fields, int index) {
    if (fields.length <= index || !fields[index].matches("[0-9]{1,10}")) {
      return null;
    }
    return Long.parseLong(fields[index]);
  }

  private static FileTime modified(Path file) {
    try {
      return Files.getLastModifiedTime(file);
    } catch (IOException absent) {
      return FileTime.fromMillis(0);
    }
  }
}
