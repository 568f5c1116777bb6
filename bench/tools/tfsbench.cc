// tfsbench: the small, fork-free workloads behind bench/*.sh.
//
// Metadata workloads time themselves in-process (steady clock) so that no
// process start-up or shell overhead dilutes a per-file cost; each prints
// "seconds <S>" on success. API workloads speak HTTP/1.1 over a unix socket,
// one connection per request (Connection: close), the simplest client Docker
// could be, and print "<key> <value>" lines.
//
//   tfsbench create DIR N SIZE     create N files of SIZE bytes (open, write, close)
//   tfsbench stat   DIR N          stat the N files
//   tfsbench unlink DIR N          unlink the N files
//   tfsbench xattr FILE NAME N     N x fgetxattr(NAME) on one open fd; on a FUSE
//                                  mount each is one round trip, so this
//                                  measures a round trip's cost
//   tfsbench gen-tree DIR N        write a deterministic source tree of N files
//   tfsbench post SOCKET PATH JSON one request; prints the reply body, exit 1 on Err
//   tfsbench api-cycle SOCKET TENANT N     N x (Create, Mount, Unmount, Remove)
//   tfsbench api-fill SOCKET TENANT PREFIX N  create N volumes PREFIX<i>
//   tfsbench api-list SOCKET R     R x List
//   tfsbench api-drain SOCKET PREFIX N     remove volumes PREFIX<i>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "tfsbench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "tfsbench: %s\n", what.c_str());
  std::exit(1);
}

long to_long(const char* s) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0) fail(std::string("not a count: ") + s);
  return v;
}

std::string file_name(const std::string& dir, long i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/f%06ld", i);
  return dir + buf;
}

void write_all(int fd, const char* p, size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write " + what);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

int cmd_create(const std::string& dir, long n, long size) {
  std::string data(static_cast<size_t>(size), 'x');
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    std::string p = file_name(dir, i);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die("create " + p);
    write_all(fd, data.data(), data.size(), p);
    if (::close(fd) != 0) die("close " + p);
  }
  std::printf("seconds %.6f\n", since(t0));
  return 0;
}

int cmd_stat(const std::string& dir, long n) {
  auto t0 = Clock::now();
  struct stat st {};
  for (long i = 0; i < n; ++i) {
    std::string p = file_name(dir, i);
    if (::stat(p.c_str(), &st) != 0) die("stat " + p);
  }
  std::printf("seconds %.6f\n", since(t0));
  return 0;
}

int cmd_unlink(const std::string& dir, long n) {
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    std::string p = file_name(dir, i);
    if (::unlink(p.c_str()) != 0) die("unlink " + p);
  }
  std::printf("seconds %.6f\n", since(t0));
  return 0;
}

int cmd_xattr(const std::string& path, const std::string& name, long n) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    // A missing or unsupported attribute is as good as a present one: the
    // question goes to the filesystem either way.
    if (::fgetxattr(fd, name.c_str(), nullptr, 0) < 0 && errno != ENODATA &&
        errno != EOPNOTSUPP) {
      die("fgetxattr " + name + " of " + path);
    }
  }
  const double s = since(t0);
  ::close(fd);
  std::printf("seconds %.6f\nus_per_call %.2f\n", s,
              n > 0 ? s * 1e6 / static_cast<double>(n) : 0.0);
  return 0;
}

// A source tree shaped like a mid-sized C project: nested directories of
// about 40 files each, sizes from 200 bytes to ~24 KiB (most small), all
// derived from the file index, so every run and every machine gets the same tree.
int cmd_gen_tree(const std::string& root, long n) {
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1103515245u + 12345u;
    return (state >> 8) & 0xffffffu;
  };
  const char* exts[] = {".c", ".h", ".cc", ".py", ".txt", ".md", ".sh", ".json"};
  std::string line =
      "static int value_%ld = %ld; /* deterministic benchmark source line */\n";
  long files_per_dir = 40;
  if (::mkdir((root + "/src").c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + root);
  for (long i = 0; i < n; ++i) {
    long d = i / files_per_dir;
    std::string dir = root + "/src";
    // three levels: src/mN/sM/dK
    dir += "/m" + std::to_string(d / 25);
    ::mkdir(dir.c_str(), 0755);  // parents first; EEXIST is fine
    dir += "/s" + std::to_string((d / 5) % 5);
    ::mkdir(dir.c_str(), 0755);
    dir += "/d" + std::to_string(d % 5);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) die("mkdir " + dir);
    uint32_t r = next();
    size_t size = 200 + (r % 8 == 0 ? r % 24000 : r % 4000);
    std::string body;
    char buf[128];
    while (body.size() < size) {
      std::snprintf(buf, sizeof buf, line.c_str(), i, static_cast<long>(body.size()));
      body += buf;
    }
    body.resize(size);
    std::string p = dir + "/file" + std::to_string(i) + exts[r % 8];
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("create " + p);
    write_all(fd, body.data(), body.size(), p);
    ::close(fd);
  }
  return 0;
}

// ---- HTTP over a unix socket -------------------------------------------

struct Reply {
  int status = 0;
  std::string body;
};

Reply post(const std::string& socket_path, const std::string& path, const std::string& json) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) fail("socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    die("connect " + socket_path);
  std::string req = "POST " + path +
                    " HTTP/1.1\r\nHost: plugin\r\nUser-Agent: tfsbench\r\n"
                    "Accept: application/vnd.docker.plugins.v1+json\r\n"
                    "Content-Type: application/json\r\nConnection: close\r\n"
                    "Content-Length: " +
                    std::to_string(json.size()) + "\r\n\r\n" + json;
  write_all(fd, req.data(), req.size(), "request");
  std::string raw;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("read reply");
    }
    if (r == 0) break;
    raw.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  Reply rep;
  if (raw.compare(0, 5, "HTTP/") != 0) fail("bad reply to " + path + ": " + raw.substr(0, 80));
  rep.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  size_t hdr_end = raw.find("\r\n\r\n");
  if (hdr_end == std::string::npos) fail("reply without headers to " + path);
  std::string headers = raw.substr(0, hdr_end);
  rep.body = raw.substr(hdr_end + 4);
  std::string lower = headers;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    std::string out;
    size_t pos = 0;
    for (;;) {
      size_t eol = rep.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      long len = std::strtol(rep.body.c_str() + pos, nullptr, 16);
      if (len <= 0) break;
      out += rep.body.substr(eol + 2, static_cast<size_t>(len));
      pos = eol + 2 + static_cast<size_t>(len) + 2;
    }
    rep.body = out;
  }
  return rep;
}

// A reply fails when the status is not 2xx or it carries a non-empty "Err".
bool reply_failed(const Reply& r) {
  if (r.status < 200 || r.status > 299) return true;
  size_t p = r.body.find("\"Err\"");
  if (p == std::string::npos) return false;
  size_t colon = r.body.find(':', p);
  size_t q = r.body.find_first_not_of(" \t", colon + 1);
  return !(q != std::string::npos && r.body.compare(q, 2, "\"\"") == 0);
}

double timed_post(const std::string& sock, const std::string& path, const std::string& json) {
  auto t0 = Clock::now();
  Reply r = post(sock, path, json);
  double s = since(t0);
  if (reply_failed(r))
    fail(path + " " + json + " failed: HTTP " + std::to_string(r.status) + " " + r.body);
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void report(const std::string& key, const std::vector<double>& v) {
  std::printf("%s_ms_median %.3f\n%s_ms_p90 %.3f\n%s_ms_max %.3f\n", key.c_str(),
              median(v) * 1e3, key.c_str(), percentile(v, 0.9) * 1e3, key.c_str(),
              percentile(v, 1.0) * 1e3);
}

int cmd_api_cycle(const std::string& sock, const std::string& tenant, long n) {
  std::vector<double> create, mount, unmount, remove, roundtrip, full;
  for (long i = 0; i < n; ++i) {
    std::string name = "bench-cycle-" + std::to_string(i);
    std::string nm = "{\"Name\":\"" + name + "\"";
    std::string id = ",\"ID\":\"bench-container-" + std::to_string(i) + "\"}";
    double c = timed_post(sock, "/VolumeDriver.Create",
                          nm + ",\"Opts\":{\"tenant\":\"" + tenant + "\"}}");
    double m = timed_post(sock, "/VolumeDriver.Mount", nm + id);
    double u = timed_post(sock, "/VolumeDriver.Unmount", nm + id);
    double r = timed_post(sock, "/VolumeDriver.Remove", nm + "}");
    create.push_back(c);
    mount.push_back(m);
    unmount.push_back(u);
    remove.push_back(r);
    roundtrip.push_back(m + u);
    full.push_back(c + m + u + r);
  }
  report("create", create);
  report("mount", mount);
  report("unmount", unmount);
  report("remove", remove);
  report("mount_unmount", roundtrip);
  report("create_mount_unmount_remove", full);
  return 0;
}

int cmd_api_fill(const std::string& sock, const std::string& tenant, const std::string& prefix,
                 long n) {
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    timed_post(sock, "/VolumeDriver.Create",
               "{\"Name\":\"" + prefix + std::to_string(i) + "\",\"Opts\":{\"tenant\":\"" +
                   tenant + "\"}}");
  std::printf("seconds %.6f\n", since(t0));
  return 0;
}

int cmd_api_drain(const std::string& sock, const std::string& prefix, long n) {
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    timed_post(sock, "/VolumeDriver.Remove", "{\"Name\":\"" + prefix + std::to_string(i) + "\"}");
  std::printf("seconds %.6f\n", since(t0));
  return 0;
}

int cmd_api_list(const std::string& sock, long reps) {
  std::vector<double> t;
  size_t volumes = 0;
  for (long i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    Reply r = post(sock, "/VolumeDriver.List", "{}");
    t.push_back(since(t0));
    if (reply_failed(r)) fail("List failed: HTTP " + std::to_string(r.status) + " " + r.body);
    volumes = 0;
    for (size_t p = r.body.find("\"Name\""); p != std::string::npos;
         p = r.body.find("\"Name\"", p + 1))
      ++volumes;
    if (i == 0) std::printf("reply_bytes %zu\n", r.body.size());
  }
  std::printf("volumes %zu\n", volumes);
  report("list", t);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: tfsbench create|stat|unlink DIR N [SIZE] | gen-tree DIR N |\n"
               "       xattr FILE NAME N |\n"
               "       post SOCKET PATH JSON | api-cycle SOCKET TENANT N |\n"
               "       api-fill SOCKET TENANT PREFIX N | api-list SOCKET R |\n"
               "       api-drain SOCKET PREFIX N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.empty()) return usage();
  const std::string& cmd = a[0];
  if (cmd == "create" && a.size() == 4)
    return cmd_create(a[1], to_long(a[2].c_str()), to_long(a[3].c_str()));
  if (cmd == "stat" && a.size() == 3) return cmd_stat(a[1], to_long(a[2].c_str()));
  if (cmd == "unlink" && a.size() == 3) return cmd_unlink(a[1], to_long(a[2].c_str()));
  if (cmd == "xattr" && a.size() == 4) return cmd_xattr(a[1], a[2], to_long(a[3].c_str()));
  if (cmd == "gen-tree" && a.size() == 3) return cmd_gen_tree(a[1], to_long(a[2].c_str()));
  if (cmd == "post" && a.size() == 4) {
    Reply r = post(a[1], a[2], a[3]);
    std::printf("%s\n", r.body.c_str());
    return reply_failed(r) ? 1 : 0;
  }
  if (cmd == "api-cycle" && a.size() == 4) return cmd_api_cycle(a[1], a[2], to_long(a[3].c_str()));
  if (cmd == "api-fill" && a.size() == 5)
    return cmd_api_fill(a[1], a[2], a[3], to_long(a[4].c_str()));
  if (cmd == "api-list" && a.size() == 3) return cmd_api_list(a[1], to_long(a[2].c_str()));
  if (cmd == "api-drain" && a.size() == 4) return cmd_api_drain(a[1], a[2], to_long(a[3].c_str()));
  return usage();
}
