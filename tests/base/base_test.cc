#include <catch2/catch.hpp>

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/file.h"
#include "base/quantity.h"
#include "base/strings.h"
#include "base/time.h"

TEST_CASE("quantities parse like resource.Quantity") {
  CHECK(*base::ParseQuantityMilli("100m") == 100);
  CHECK(*base::ParseQuantityMilli("2") == 2000);
  CHECK(*base::ParseQuantityMilli("0.5") == 500);
  CHECK(*base::ParseQuantityMilli("1.5m") == 2);  // rounds up
  CHECK(*base::ParseQuantity("64Mi") == 64LL * 1024 * 1024);
  CHECK(*base::ParseQuantity("1G") == 1000000000LL);
  CHECK(*base::ParseQuantity("1e3") == 1000);
  CHECK(*base::ParseQuantity("100m") == 1);
  CHECK(*base::ParseQuantity("4046788Ki") == 4046788LL * 1024);
  CHECK_FALSE(base::ParseQuantity("12q").has_value());
  CHECK_FALSE(base::ParseQuantity("").has_value());
  CHECK_FALSE(base::ParseQuantity("Mi").has_value());
}

TEST_CASE("RFC3339 formats as metav1.Time, MicroTime and CRI log time") {
  auto t = base::FromUnixNanos(1700000000123456789LL);
  CHECK(base::FormatRfc3339(t) == "2023-11-14T22:13:20Z");
  CHECK(base::FormatRfc3339Micro(t) == "2023-11-14T22:13:20.123456Z");
  CHECK(base::FormatRfc3339Nano(t) == "2023-11-14T22:13:20.123456789Z");
  CHECK(base::FormatRfc3339Nano(base::FromUnixNanos(1700000000100000000LL)) == "2023-11-14T22:13:20.1Z");
  auto p = base::ParseRfc3339("2023-11-14T22:13:20.123456789Z");
  REQUIRE(p);
  CHECK(base::ToUnixNanos(*p) == 1700000000123456789LL);
  auto q = base::ParseRfc3339("2023-11-14T23:13:20+01:00");
  REQUIRE(q);
  CHECK(base::FormatRfc3339(*q) == "2023-11-14T22:13:20Z");
  CHECK_FALSE(base::ParseRfc3339("2023-11-14 nonsense").has_value());
}

TEST_CASE("string helpers") {
  CHECK(base::Split("a,b,,c", ',') == std::vector<std::string>{"a", "b", "", "c"});
  CHECK(base::Split("a,b,,c", ',', true) == std::vector<std::string>{"a", "b", "c"});
  CHECK(base::Trim("  x \n") == "x");
  CHECK(base::RandomHexId().size() == 64);
  CHECK(base::RandomAlnum(5).size() == 5);
  // Unreserved characters stay; everything else (selectors, spaces, UTF-8) is %XX, upper hex.
  CHECK(base::PercentEncode("AZaz09-._~") == "AZaz09-._~");
  CHECK(base::PercentEncode("spec.nodeName=node-a,app in (x y)") ==
        "spec.nodeName%3Dnode-a%2Capp%20in%20%28x%20y%29");
  CHECK(base::PercentEncode("a/b?c&d\xc3\xa9") == "a%2Fb%3Fc%26d%C3%A9");
}

TEST_CASE("ListDir names a directory's entries, nothing when unreadable") {
  char tmpl[] = "/tmp/cubelet-base-listdir-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string d = tmpl;
  REQUIRE(base::WriteFile(d + "/a", "1"));
  REQUIRE(base::MkdirAll(d + "/sub"));
  auto names = base::ListDir(d);
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"a", "sub"});
  CHECK(base::ListDir(d + "/missing").empty());
  REQUIRE(base::RemoveAll(d));
}

TEST_CASE("SpreadSubdirectories sets ext4's top-of-hierarchy flag, and is false where there is none") {
  char tmpl[] = "/var/tmp/cubelet-base-spread-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string d = tmpl;
  struct statfs fs {};
  REQUIRE(statfs(d.c_str(), &fs) == 0);
  auto flags = [](const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int f = 0;
    bool ok = fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &f) == 0;
    if (fd >= 0) close(fd);
    return ok ? f : -1;
  };
  if (fs.f_type == EXT4_SUPER_MAGIC) {  // ext2/3/4 share the magic
    CHECK((flags(d) & FS_TOPDIR_FL) == 0);
    CHECK(base::SpreadSubdirectories(d));
    CHECK((flags(d) & FS_TOPDIR_FL) != 0);
    CHECK(base::SpreadSubdirectories(d));  // already set
  } else {
    WARN("/var/tmp is not ext2/3/4 here: only the negative cases run");
  }
  CHECK_FALSE(base::SpreadSubdirectories("/proc"));
  CHECK_FALSE(base::SpreadSubdirectories(d + "/missing"));
  REQUIRE(base::RemoveAll(d));
}

TEST_CASE("FormatGoDuration prints as Go's time.Duration.String, and parses back") {
  using ms = std::chrono::milliseconds;
  CHECK(base::FormatGoDuration(ms(0)) == "0s");
  CHECK(base::FormatGoDuration(ms(250)) == "250ms");
  CHECK(base::FormatGoDuration(ms(10000)) == "10s");
  CHECK(base::FormatGoDuration(ms(90500)) == "1m30.5s");
  CHECK(base::FormatGoDuration(ms(120000)) == "2m0s");
  CHECK(base::FormatGoDuration(ms(1050)) == "1.05s");
  CHECK(base::FormatGoDuration(ms(3600000)) == "1h0m0s");
  CHECK(base::FormatGoDuration(ms(14400000)) == "4h0m0s");
  CHECK(base::FormatGoDuration(ms(-1500)) == "-1.5s");
  for (int64_t v : {0L, 7L, 999L, 1000L, 61001L, 3723004L}) {
    ms back{};
    REQUIRE(base::ParseGoDuration(base::FormatGoDuration(ms(v)), &back));
    CHECK(back.count() == v);
  }
}

TEST_CASE("Prometheus text: sample values and escaped label values") {
  CHECK(base::PromValue(1.5) == "1.5");
  CHECK(base::PromValue(4096) == "4096");
  CHECK(base::PromValue(1700000000.123) == "1700000000.123");
  CHECK(base::PromLabelValue("plain") == "plain");
  CHECK(base::PromLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

TEST_CASE("DirDiskUsage: allocated bytes and inodes of a tree, hard links once") {
  char tmpl[] = "/var/tmp/cubelet-base-du-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string d = tmpl;
  REQUIRE(base::MkdirAll(d + "/sub/deeper"));
  REQUIRE(base::WriteFile(d + "/sub/deeper/big", std::string(1 << 20, 'x')));
  REQUIRE(link((d + "/sub/deeper/big").c_str(), (d + "/again").c_str()) == 0);
  REQUIRE(base::WriteFile(d + "/small", "1"));
  REQUIRE(symlink("small", (d + "/ln").c_str()) == 0);
  auto u = base::DirDiskUsage(d);
  CHECK(u.inodes == 6);  // d, sub, deeper, big (= again), small, ln
  CHECK(u.bytes >= (1u << 20));
  CHECK(u.bytes < 2u * (1u << 20));  // the hard link not counted twice
  CHECK(base::DirDiskUsage(d + "/missing").inodes == 0);
  REQUIRE(base::RemoveAll(d));
}
