#include "agent/cri_log_reader.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

using agent::CriLogReader;
using agent::LogReadOptions;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/cri-log-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

void WriteFile(const std::string& path, const std::string& data, bool append = false) {
  std::ofstream f(path, append ? std::ios::app | std::ios::binary : std::ios::binary);
  f << data;
}

// Reads the whole file through the reader (no follow) and returns the rendered output.
std::string ReadAll(const std::string& path, const LogReadOptions& opts) {
  auto r = CriLogReader::Open(path, opts);
  REQUIRE(r);
  std::string out;
  for (;;) {
    auto st = (*r)->Read(&out, 1000);  // small reads: lines cross read boundaries
    REQUIRE(st);
    if (*st != CriLogReader::Status::kData) break;
  }
  (*r)->Finish(&out);
  return out;
}

std::string Line(int sec, const char* stream, const char* tag, const std::string& msg) {
  char ts[64];
  snprintf(ts, sizeof ts, "2024-01-01T00:00:%02d.%09dZ", sec % 60, sec * 1000 + 7);
  return std::string(ts) + " " + stream + " " + tag + " " + msg + "\n";
}

}  // namespace

TEST_CASE("ParseCriLogLine reads the four fields") {
  auto e = agent::ParseCriLogLine("2016-10-06T00:17:09.669794202Z stdout F hello world");
  REQUIRE(e);
  CHECK(e->timestamp == "2016-10-06T00:17:09.669794202Z");
  CHECK(e->stream == agent::LogStream::kStdout);
  CHECK_FALSE(e->partial);
  CHECK(e->message == "hello world");
  CHECK(base::ToUnixNanos(e->time) == 1475713029669794202LL);

  auto p = agent::ParseCriLogLine("2016-10-06T00:17:09.669794202Z stderr P  two  spaces ");
  REQUIRE(p);
  CHECK(p->stream == agent::LogStream::kStderr);
  CHECK(p->partial);
  CHECK(p->message == " two  spaces ");

  // Tags are ':'-separated; only the first decides.
  auto t = agent::ParseCriLogLine("2016-10-06T00:17:09Z stdout P:x msg");
  REQUIRE(t);
  CHECK(t->partial);

  // Empty messages, with and without the last space.
  auto empty1 = agent::ParseCriLogLine("2016-10-06T00:17:09Z stdout F ");
  REQUIRE(empty1);
  CHECK(empty1->message.empty());
  auto empty2 = agent::ParseCriLogLine("2016-10-06T00:17:09Z stdout F");
  REQUIRE(empty2);
  CHECK(empty2->message.empty());
}

TEST_CASE("ParseCriLogLine rejects malformed lines") {
  CHECK_FALSE(agent::ParseCriLogLine(""));
  CHECK_FALSE(agent::ParseCriLogLine("garbage"));
  CHECK_FALSE(agent::ParseCriLogLine("not-a-time stdout F x"));
  CHECK_FALSE(agent::ParseCriLogLine("2016-10-06T00:17:09Z stdin F x"));
  CHECK_FALSE(agent::ParseCriLogLine("2016-10-06T00:17:09Z stdout"));
  CHECK_FALSE(agent::ParseCriLogLine("2016-10-06T00:17:09Z stdout "));
  CHECK_FALSE(agent::ParseCriLogLine("{\"log\":\"docker json\",\"stream\":\"stdout\"}"));
}

TEST_CASE("FixedNanoTimestamp pads the fraction to nine digits and keeps the zone") {
  CHECK(agent::FixedNanoTimestamp("2016-10-06T00:17:09.6697942Z") ==
        "2016-10-06T00:17:09.669794200Z");
  CHECK(agent::FixedNanoTimestamp("2016-10-06T00:17:09Z") == "2016-10-06T00:17:09.000000000Z");
  CHECK(agent::FixedNanoTimestamp("2016-10-06T00:17:09.1234567891+02:00") ==
        "2016-10-06T00:17:09.123456789+02:00");
}

TEST_CASE("partial entries are joined per stream until the full entry") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "P", "hel") + Line(2, "stderr", "F", "an error") +
                      Line(3, "stdout", "P", "lo ") + Line(4, "stdout", "F", "world") +
                      Line(5, "stdout", "F", "next"));
  CHECK(ReadAll(path, {}) == "an error\nhello world\nnext\n");

  // With timestamps the joined line carries the time of its first entry, in the fixed format.
  LogReadOptions ts;
  ts.timestamps = true;
  CHECK(ReadAll(path, ts) ==
        "2024-01-01T00:00:02.000002007Z an error\n"
        "2024-01-01T00:00:01.000001007Z hello world\n"
        "2024-01-01T00:00:05.000005007Z next\n");
}

TEST_CASE("malformed lines are skipped without harm") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "F", "one") + "this is not cri\n\n" +
                      "2024-01-01T00:00:02Z stdweird F x\n" + std::string("\0\0\xff\n", 4) +
                      Line(2, "stdout", "F", "two"));
  CHECK(ReadAll(path, {}) == "one\ntwo\n");
}

TEST_CASE("an unterminated last line is shown without follow") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "F", "one") + "2024-01-01T00:00:02Z stdout F tw");
  CHECK(ReadAll(path, {}) == "one\ntw\n");
  // A trailing partial entry with no F yet is shown as it is (no newline).
  WriteFile(path, Line(1, "stdout", "F", "one") + Line(2, "stdout", "P", "half"));
  CHECK(ReadAll(path, {}) == "one\nhalf");
}

TEST_CASE("sinceTime skips older lines") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  std::string data;
  for (int i = 0; i < 10; ++i) data += Line(i, "stdout", "F", "line" + std::to_string(i));
  WriteFile(path, data);
  LogReadOptions o;
  o.since = base::ParseRfc3339("2024-01-01T00:00:07Z");
  CHECK(ReadAll(path, o) == "line7\nline8\nline9\n");
  o.since = base::ParseRfc3339("2024-01-01T00:00:07.000007007Z");  // exactly line 7: kept
  CHECK(ReadAll(path, o) == "line7\nline8\nline9\n");
  o.since = base::ParseRfc3339("2024-01-01T00:00:07.000007008Z");
  CHECK(ReadAll(path, o) == "line8\nline9\n");
}

TEST_CASE("limitBytes cuts the output, prefixes included") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "F", "abcdef") + Line(2, "stdout", "F", "ghijkl"));
  LogReadOptions o;
  o.limit_bytes = 10;
  CHECK(ReadAll(path, o) == "abcdef\nghi");
  o.limit_bytes = 7;
  CHECK(ReadAll(path, o) == "abcdef\n");
  o.timestamps = true;
  o.limit_bytes = 35;
  CHECK(ReadAll(path, o) == "2024-01-01T00:00:01.000001007Z abcd");
}

TEST_CASE("tailLines returns the last N full lines") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "F", "a") + Line(2, "stdout", "P", "b1") +
                      Line(3, "stdout", "P", "b2") + Line(4, "stdout", "F", "b3") +
                      Line(5, "stderr", "F", "c"));
  LogReadOptions o;
  o.tail_lines = 2;
  CHECK(ReadAll(path, o) == "b1b2b3\nc\n");
  o.tail_lines = 1;
  CHECK(ReadAll(path, o) == "c\n");
  o.tail_lines = 0;
  CHECK(ReadAll(path, o).empty());
  o.tail_lines = 3;
  CHECK(ReadAll(path, o) == "a\nb1b2b3\nc\n");
  o.tail_lines = 100;
  CHECK(ReadAll(path, o) == "a\nb1b2b3\nc\n");
}

TEST_CASE("FindTailOffset agrees with a forward count for every N and block size") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  // ~300 KiB: many blocks; lines of varied length, P runs, malformed lines, a long line that
  // spans several blocks, and an unterminated line at the end.
  std::string data;
  std::vector<int64_t> full_line_ends;  // offset after each F line
  for (int i = 0; i < 4000; ++i) {
    if (i % 97 == 0) data += "junk line " + std::to_string(i) + "\n";
    if (i % 13 == 0) data += Line(i, "stdout", "P", std::string(i % 50, 'p'));
    std::string msg = "msg" + std::to_string(i) + std::string(i % 40, 'x');
    if (i == 2500) msg = std::string(20000, 'L');
    data += Line(i, i % 3 ? "stdout" : "stderr", "F", msg);
    full_line_ends.push_back(static_cast<int64_t>(data.size()));
  }
  data += "2024-01-01T00:00:00Z stdout F unterminated";
  WriteFile(path, data);
  int fd = open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  for (size_t block : {size_t{7}, size_t{100}, size_t{4096}, size_t{65536}, size_t{1 << 20}}) {
    for (int64_t n : {0, 1, 2, 3, 12, 13, 14, 1000, 1499, 1500, 1501, 3999, 4000, 4001, 10000}) {
      int64_t want = 0;
      int64_t total = static_cast<int64_t>(full_line_ends.size());
      if (n < total) want = full_line_ends[static_cast<size_t>(total - n - 1)];
      auto got = agent::FindTailOffset(fd, n, block);
      REQUIRE(got);
      INFO("block=" << block << " n=" << n);
      CHECK(*got == want);
    }
  }
  CHECK(*agent::FindTailOffset(fd, -1) == 0);
  close(fd);

  // And the reader renders exactly those lines.
  LogReadOptions o;
  o.tail_lines = 2;
  CHECK(ReadAll(path, o) ==
        "msg3998" + std::string(3998 % 40, 'x') + "\nmsg3999" + std::string(3999 % 40, 'x') + "\n");
}

TEST_CASE("tail on an empty file and on a file with no newline") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, "");
  int fd = open(path.c_str(), O_RDONLY);
  CHECK(*agent::FindTailOffset(fd, 5) == 0);
  close(fd);
  LogReadOptions o;
  o.tail_lines = 5;
  CHECK(ReadAll(path, o).empty());
}

TEST_CASE("follow: new data is read after EOF, a rotated file is reopened") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  WriteFile(path, Line(1, "stdout", "F", "first"));
  LogReadOptions o;
  o.follow = true;
  auto r = CriLogReader::Open(path, o);
  REQUIRE(r);
  CriLogReader& reader = **r;
  REQUIRE(reader.watch_fd() >= 0);
  std::string out;
  while (*reader.Read(&out) == CriLogReader::Status::kData) {
  }
  CHECK(out == "first\n");

  // Appended half line: held back until its '\n' (following), P held until F.
  WriteFile(path, Line(2, "stdout", "P", "par") + "2024-01-01T00:00:03Z stdout F ti", true);
  out.clear();
  while (*reader.Read(&out) == CriLogReader::Status::kData) {
  }
  CHECK(out.empty());
  WriteFile(path, "al\n", true);
  while (*reader.Read(&out) == CriLogReader::Status::kData) {
  }
  CHECK(out == "partial\n");

  // No rotation yet.
  out.clear();
  CHECK_FALSE(*reader.ReopenIfRotated(&out));

  // Rotate: rename, a late write to the old file, then a new file at the same path.
  std::string rotated = dir.path + "/0.log.20240101";
  REQUIRE(rename(path.c_str(), rotated.c_str()) == 0);
  CHECK_FALSE(*reader.ReopenIfRotated(&out));  // nothing at the path yet
  WriteFile(rotated, Line(4, "stdout", "F", "late"), true);
  WriteFile(path, Line(5, "stdout", "F", "new file"));
  CHECK(*reader.ReopenIfRotated(&out));
  CHECK(out == "late\n");
  out.clear();
  while (*reader.Read(&out) == CriLogReader::Status::kData) {
  }
  CHECK(out == "new file\n");

  // copytruncate: the file shrinks below our offset.
  WriteFile(path, Line(6, "stdout", "F", "x"));
  out.clear();
  CHECK(*reader.ReopenIfRotated(&out));
  while (*reader.Read(&out) == CriLogReader::Status::kData) {
  }
  CHECK(out == "x\n");
  reader.DrainWatch();
}

TEST_CASE("Open names the file in its error") {
  auto r = CriLogReader::Open("/nonexistent/dir/0.log", {});
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("/nonexistent/dir/0.log") != std::string::npos);
  CHECK(r.error().code == ENOENT);
}

namespace {
// Bytes this process has read through read(2)/pread(2) so far.
int64_t ReadChars() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return -1;
}
}  // namespace

TEST_CASE("tail of a 10 MiB log reads only its end") {
  TempDir dir;
  std::string path = dir.path + "/0.log";
  {
    std::ofstream f(path, std::ios::binary);
    std::string line = Line(1, "stdout", "F", std::string(100, 'x'));
    for (size_t written = 0; written < (10u << 20); written += line.size()) f << line;
    f << Line(2, "stdout", "F", "second to last") << Line(3, "stdout", "F", "last");
  }
  int fd = open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  int64_t before = ReadChars();
  REQUIRE(before >= 0);
  auto off = agent::FindTailOffset(fd, 2);
  int64_t read_bytes = ReadChars() - before;
  close(fd);
  REQUIRE(off);
  CHECK(read_bytes <= 68 * 1024);  // one 64 KiB block (+ /proc/self/io itself), not 10 MiB
  LogReadOptions o;
  o.tail_lines = 2;
  CHECK(ReadAll(path, o) == "second to last\nlast\n");
}
