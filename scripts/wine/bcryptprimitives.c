/* A stand-in for Windows' bcryptprimitives.dll, for running Rust programs under Wine 8 only.
 *
 * Rust's standard library (1.78 and later) fills its random seeds with ProcessPrng, which
 * Windows 10 and later export from bcryptprimitives.dll. Wine 8 has no such DLL, so every Rust
 * program fails to load (status c0000135). This shim exports ProcessPrng and answers it with
 * advapi32's RtlGenRandom (SystemFunction036), the older system CSPRNG. It is built from this
 * source by `make test-windows` (scripts/wine/setup.sh) and put on WINEPATH; it is never
 * shipped and never needed on real Windows. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
