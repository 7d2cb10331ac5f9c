import { Code, ConnectError } from "@connectrpc/connect";

/**
 * ErrorKind is what a UI switches on. Every Connect code maps to exactly one
 * kind (see {@link kindOf}):
 *
 * - `unauthenticated`: no session, a session that could not be refreshed
 *   (then {@link RpcError.sessionEnded} is true: log in again), or another
 *   credential of the call that is no longer good, such as an expired
 *   checkout token.
 * - `forbidden`: not yours, or not allowed (PermissionDenied).
 * - `invalid`: bad input (InvalidArgument, OutOfRange).
 * - `not_found`: an unknown coupon code or payment method (NotFound).
 * - `conflict`: a token or request already used (AlreadyExists, Aborted).
 * - `refused`: a business refusal (FailedPrecondition, ResourceExhausted):
 *   an expired checkout, a coupon no longer valid, too few points, a
 *   declined card.
 * - `unavailable`: a dependency or the network is down (Unavailable,
 *   DeadlineExceeded); trying again later may work.
 * - `canceled`: the caller gave up (Canceled, an aborted signal).
 * - `unknown`: anything else (Internal, Unknown, Unimplemented, DataLoss).
 */
export type ErrorKind =
  | "unauthenticated"
  | "forbidden"
  | "invalid"
  | "not_found"
  | "conflict"
  | "refused"
  | "unavailable"
  | "canceled"
  | "unknown";

/** RpcError is a failed call as the UI sees it. */
export interface RpcError {
  /** What kind of failure; switch on this. */
  readonly kind: ErrorKind;
  /** The server's message without the "[code]" prefix; safe to show. */
  readonly message: string;
  /** The Connect code. */
  readonly code: Code;
  /** The Connect code's name as on the wire, e.g. "failed_precondition". */
  readonly codeName: string;
  /**
   * True when the session was cleared because it could not be refreshed
   * (or there was none): the user must log in again.
   */
  readonly sessionEnded: boolean;
}

/** SessionEndedHeader marks, in an error's metadata, a session that has ended. */
const SessionEndedHeader = "tokenrelay-session-ended";

/**
 * sessionEndedError is what every call throws once the session is gone: no
 * session, or a refresh that was refused (expired, revoked or reused refresh
 * token). Its code is Unauthenticated and {@link isSessionEnded} is true.
 * (A marker in the metadata rather than a subclass: ConnectError's
 * instanceof goes by name, and the marker survives ConnectError.from.)
 */
export function sessionEndedError(message = "your session has ended; log in again", cause?: unknown): ConnectError {
  return new ConnectError(message, Code.Unauthenticated, { [SessionEndedHeader]: "1" }, undefined, cause);
}

/** isSessionEnded reports an error from {@link sessionEndedError}. */
export function isSessionEnded(err: unknown): boolean {
  return err instanceof ConnectError && err.metadata.get(SessionEndedHeader) === "1";
}

/** kindOf maps a Connect code to its {@link ErrorKind}. */
export function kindOf(code: Code): ErrorKind {
  switch (code) {
    case Code.Unauthenticated:
      return "unauthenticated";
    case Code.PermissionDenied:
      return "forbidden";
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return "invalid";
    case Code.NotFound:
      return "not_found";
    case Code.AlreadyExists:
    case Code.Aborted:
      return "conflict";
    case Code.FailedPrecondition:
    case Code.ResourceExhausted:
      return "refused";
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return "unavailable";
    case Code.Canceled:
      return "canceled";
    default:
      return "unknown";
  }
}

const codeNames: Record<number, string> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out_of_range",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data_loss",
  [Code.Unauthenticated]: "unauthenticated",
};

/**
 * toRpcError turns anything a call may throw into an {@link RpcError}. A
 * network failure (fetch rejecting) becomes `unavailable`, not `unknown`.
 */
export function toRpcError(err: unknown): RpcError {
  const ce = ConnectError.from(err);
  let code = ce.code;
  let message = ce.rawMessage;
  // connect-web reports a fetch that never reached the server (offline,
  // connection refused) as Unknown wrapping a TypeError.
  if (code === Code.Unknown && (ce.cause instanceof TypeError || err instanceof TypeError)) {
    code = Code.Unavailable;
    message = "the server cannot be reached; check your connection and try again";
  }
  return {
    kind: kindOf(code),
    message,
    code,
    codeName: codeNames[code] ?? "unknown",
    sessionEnded: isSessionEnded(err),
  };
}
