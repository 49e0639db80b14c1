/* A link-time stand-in for the CUDA driver library (libcuda.so.1), which
 * only an NVIDIA driver installs. ./install.sh --acpp-cuda compiles it into
 * <CUDA SDK>/stub/libcuda.so (soname libcuda.so.1) for AdaptiveCpp's CUDA
 * backend plugin to link against; it is never shipped and never loaded:
 * the plugin's NEEDED libcuda.so.1 is the GPU machine's driver, and stub/
 * holds no file of that name, so nothing here can be picked up at run time.
 *
 * It must DEFINE every driver function the plugin calls: a stub without
 * them is dropped by the linker, and the plugin then fails to load with
 * "undefined symbol: cuLaunchKernel" (../shared/ENVIRONMENT.md).
 * install.sh checks that the built plugin needs no cu* symbol missing here.
 * Each returns CUDA_ERROR_STUB_LIBRARY (34), as NVIDIA's own stubs do. */
#define STUB(name) int name(void) { return 34; }
STUB(cuLaunchKernel)
STUB(cuModuleGetFunction)
STUB(cuModuleLoadDataEx)
STUB(cuModuleUnload)
