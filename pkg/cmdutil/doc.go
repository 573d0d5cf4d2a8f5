// Package cmdutil owns what every ktstr binary does the same way around its
// urfave/cli app: the version string and its --version flag (no -v),
// options after operands (Intersperse; not for tools whose operands are a
// command), printing an error as one line
// prefixed with the tool's name, and turning errors into documented exit
// codes. It imports only urfave/cli and the standard library.
package cmdutil
