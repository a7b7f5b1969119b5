// Run an edge-se AOTInductor package (model.aoti.pt2) on one input, without Python.
//
//   aoti_run PACKAGE INPUT.f32 OUTPUT.f32 N C H W
//
// INPUT.f32 holds N*C*H*W float32 values (C order, already preprocessed as the bundle's
// manifest says); OUTPUT.f32 receives the first output's float32 values. The package's own
// input checks are switched on (AOTI_RUNTIME_CHECK_INPUTS=1), so a batch outside the range it
// was compiled for is refused instead of run unchecked. Exit status: 0 ok, 2 bad input.
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: " << argv[0] << " PACKAGE INPUT.f32 OUTPUT.f32 N C H W\n";
    return 2;
  }
  setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 1);
  std::vector<int64_t> shape;
  for (int i = 4; i < 8; ++i) shape.push_back(std::stoll(argv[i]));
  const int64_t count = shape[0] * shape[1] * shape[2] * shape[3];

  std::ifstream in(argv[2], std::ios::binary | std::ios::ate);
  if (!in || in.tellg() != static_cast<std::streamoff>(count * sizeof(float))) {
    std::cerr << "error: " << argv[2] << " does not hold " << count << " float32 values\n";
    return 2;
  }
  in.seekg(0);
  at::Tensor x = torch::empty(shape, torch::kFloat32);
  in.read(reinterpret_cast<char*>(x.data_ptr<float>()), count * sizeof(float));

  try {
    c10::InferenceMode guard;
    torch::inductor::AOTIModelPackageLoader loader(argv[1]);
    std::vector<at::Tensor> outputs = loader.run({x});
    at::Tensor y = outputs.at(0).contiguous().to(torch::kFloat32);
    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char*>(y.data_ptr<float>()), y.numel() * sizeof(float));
    std::cout << "ok: output " << y.sizes() << "\n";
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    std::cerr << "error: " << what.substr(0, what.find('\n')) << "\n";
    return 2;
  } catch (const std::exception& e) {  // the package's input checks throw std::runtime_error
    std::string what = e.what();
    std::cerr << "error: " << what.substr(0, what.find('\n')) << "\n";
    return 2;
  }
  return 0;
}
