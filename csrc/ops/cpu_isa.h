// The CPU instruction set an op runs with (cpu/isa.h), or the op's error naming why not.
#pragma once
#include <c10/util/Exception.h>

#include <string>

#include "cpu/isa.h"

namespace dwq {

inline cpu::Isa current_isa(const char* op) {
  cpu::Isa isa;
  std::string err;
  TORCH_CHECK(cpu::select_isa(&isa, &err), "dwq.", op, ": ", err);
  return isa;
}

}  // namespace dwq
