import { RemoteLockError } from './remote-lock.error';

/**
 * An error left by a previous holder whose class is not registered in
 * `forRoot({ errors })` (or a value that was not an Error). It keeps the original
 * `name`, `message`, `code` and JSON-safe fields.
 * @publicApi
 */
export class RemoteError extends RemoteLockError {
  override readonly code: string = 'RLOCK_REMOTE_ERROR';
}
