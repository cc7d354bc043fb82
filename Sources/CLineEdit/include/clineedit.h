#ifndef SFTPLUA_CLINEEDIT_H
#define SFTPLUA_CLINEEDIT_H
/* Line editing for the REPL through libedit's readline interface (BSD licensed). */

/* Returns a malloc'd, NULL-terminated array of malloc'd candidates completing `word`, given the
   line up to the cursor; NULL for none. */
typedef char **(*sl_complete_fn)(const char *word, const char *line_to_cursor);

/* Loads history from `histfile` (may be NULL) and installs the completer. */
void sl_edit_init(const char *histfile, sl_complete_fn complete);
/* Reads a line (malloc'd, without newline), NULL at end of input or on Ctrl-C. */
char *sl_edit_readline(const char *prompt);
/* After Ctrl-C or Ctrl-D at the prompt: standard input can be read again. */
void sl_edit_clear_input_error(void);
/* Adds a line to the history and saves the history file (at most `keep` lines). */
void sl_edit_remember(const char *line, const char *histfile, int keep);
/* Writes `n` bytes and a newline to C's stdout (where Lua's print writes) and flushes it. */
void sl_edit_write_line(const char *bytes, unsigned long n);
#endif
