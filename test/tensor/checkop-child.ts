// Child of checkop.test.ts: one opTest whose checkOp may or may not find the native backend (the parent decides
// through SELFSUP_NATIVE_ADDON); the parent reads the TAP report.
import * as T from '../../src/tensor/index.js';
import { checkOp, opTest } from '../helpers.js';

opTest('neg through checkOp', () => {
  checkOp('neg', T.neg, [{ shape: [3, 2] }]);
});
