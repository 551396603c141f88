/** A failure to inject into a build, for trying the error paths. */
export enum InjectedFailure {
  Recoverable = 'recoverable',
  Fatal = 'fatal',
}
