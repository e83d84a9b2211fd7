// The benchmarks' guard against a handicapped PyTorch: a reference BLAS (reference/ssl_torch.py's blas_in_use marks a
// libblas without OpenBLAS's symbols) stops bench:train and bench:budget with a message that says what to install.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refuseReferenceBlas } from '../../bench/configs.js';

const OPENBLAS = '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3, /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so (OpenBLAS core SkylakeX)';
const NETLIB = '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0';

test('refuseReferenceBlas: OpenBLAS and MKL pass; the netlib BLAS, even beside an OpenBLAS numpy mapped, or none, refuse', () => {
  assert.doesNotThrow(() => refuseReferenceBlas('bench:budget', OPENBLAS));
  assert.doesNotThrow(() => refuseReferenceBlas('bench:budget', '/opt/intel/lib/libmkl_rt.so.2'));
  assert.throws(() => refuseReferenceBlas('bench:budget', `${NETLIB}, ${OPENBLAS} [reference BLAS: ${NETLIB}]`),
    /^Error: \[bench:budget\] PyTorch runs on a reference BLAS \(.*libblas\.so\.3\.11\.0.*\), which would handicap it; install an optimised one \(Debian: apt-get install libopenblas0-pthread\) or pass --allow-reference-blas$/);
  assert.throws(() => refuseReferenceBlas('bench:train', NETLIB), /^Error: \[bench:train\] PyTorch runs on a reference BLAS/);
  assert.throws(() => refuseReferenceBlas('bench:train', ''), /reference BLAS \(none found\)/);
});
