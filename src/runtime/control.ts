// Layout of the control block the pool and its workers share (Int32 slots, then f64 arguments).
// The main thread publishes one op at a time: arguments, op index, pending count, then bumps GEN.
export const CTL_GEN = 0; // bumped once per published op; workers wait on it
export const CTL_OP = 1; // kernel index into the names list, or OP_EXIT
export const CTL_NARGS = 2;
export const CTL_PENDING = 3; // workers still running the current op
export const CTL_ERROR = 4; // set to 1 by a worker whose kernel threw
export const CTL_NTH = 5;
export const CTL_ARGS_F64 = 8; // f64 index where arguments start (byte 64)
export const CTL_MAX_ARGS = 32;
export const CTL_BYTES = 64 + 8 * CTL_MAX_ARGS;
export const OP_EXIT = -1;
export const SPIN_ITERATIONS = 20000; // brief spin before sleeping: decode issues ops every few microseconds
