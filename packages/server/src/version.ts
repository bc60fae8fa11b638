/** Baton's version, shown in the API document and by the command line. */
export const BATON_VERSION = '0.1.0';
