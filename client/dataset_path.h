// How a path inside a version given by a user becomes the relative form meta
// stores ("a/b/c.jpg"): "/a/b", "./a/b/" and "a/b" name the same entry, in the
// CLI and the prefetch library alike. The root is "". What is left is still
// checked by meta (no "..", no empty components).
#pragma once

#include <string>

namespace sluice::client {

inline std::string datasetPath(std::string p) {
  for (;;) {
    if (!p.empty() && p.front() == '/') {
      p.erase(p.begin());
    } else if (p.rfind("./", 0) == 0) {
      p.erase(0, 2);
    } else {
      break;
    }
  }
  if (p == ".") p.clear();
  while (!p.empty() && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace sluice::client
