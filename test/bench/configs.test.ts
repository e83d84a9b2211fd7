// The benchmarks' guard against a handicapped PyTorch: a reference BLAS (reference/ssl_torch.py's blas_in_use marks a
// libblas without OpenBLAS's symbols) stops bench:train and bench:budget with a message that says what to install.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { budgetRecipe, refuseReferenceBlas, torchEnv } from '../../bench/configs.js';
import { presetConfig } from '../../src/train/config.js';

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

test('budgetRecipe: both sides get the cifar preset\'s lr and weight decay (SimSiam 0.03 per 256, not budget_torch.py\'s 0.06), or --lr', () => {
  // a 60-minute SimSiam comparison once ran PyTorch at its own default 0.06 against the preset's 0.03
  assert.deepEqual(budgetRecipe('simsiam'), { lr: 0.03, weightDecay: 5e-4 });
  assert.deepEqual(budgetRecipe('moco'), { lr: 0.06, weightDecay: 5e-4 });
  assert.deepEqual(budgetRecipe('mae'), { lr: 1.5e-4, weightDecay: 0.05 });
  assert.deepEqual(budgetRecipe('simsiam', 0.06), { lr: 0.06, weightDecay: 5e-4 });
  for (const m of ['simsiam', 'moco', 'mae'] as const) {
    const o = presetConfig(m, 'cifar').optim;
    assert.equal(budgetRecipe(m).lr, o.lr);
    assert.equal(o.scaleLr, m !== 'moco'); // budget_torch.py scales SimSiam's and MAE's lr by batch / 256, not MoCo's
  }
});

test('torchEnv: the OpenBLAS variables are unset for PyTorch; a oneDNN cap below AVX-512 caps its OpenBLAS core alike', () => {
  const here = { OPENBLAS_CORETYPE: 'Prescott', OPENBLAS_L2_SIZE: '1024', PATH: '/usr/bin' };
  const plain = torchEnv({ THREADS: '2' }, here);
  assert.equal(plain.env.OPENBLAS_CORETYPE, undefined);
  assert.equal(plain.env.OPENBLAS_L2_SIZE, undefined);
  assert.equal(plain.env.THREADS, '2');
  assert.equal(plain.env.PATH, '/usr/bin');
  assert.equal(plain.coreType, null);
  assert.equal(plain.prefix, 'env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE');
  assert.equal(here.OPENBLAS_CORETYPE, 'Prescott'); // the caller's environment is left alone
  const avx2 = torchEnv({}, { ...here, ONEDNN_MAX_CPU_ISA: 'AVX2' });
  assert.equal(avx2.env.OPENBLAS_CORETYPE, 'Haswell');
  assert.equal(avx2.env.OPENBLAS_L2_SIZE, undefined);
  assert.equal(avx2.env.ONEDNN_MAX_CPU_ISA, 'AVX2'); // PyTorch's own oneDNN reads the cap too
  assert.equal(avx2.prefix, 'env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell');
  assert.equal(torchEnv({}, { DNNL_MAX_CPU_ISA: 'avx2_vnni' }).coreType, 'Haswell');
  assert.equal(torchEnv({}, { ONEDNN_MAX_CPU_ISA: 'AVX' }).coreType, 'Sandybridge');
  assert.equal(torchEnv({}, { ONEDNN_MAX_CPU_ISA: 'SSE41' }).coreType, 'Nehalem');
  for (const isa of ['AVX512_CORE', 'AVX512_CORE_AMX', 'ALL', '']) assert.equal(torchEnv({}, { ONEDNN_MAX_CPU_ISA: isa }).coreType, null, isa);
});
