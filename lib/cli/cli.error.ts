/** An error the command line reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    /** See `EXIT_CODES`. */
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
