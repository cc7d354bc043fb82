#include "clineedit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <editline/readline.h>

static sl_complete_fn sl_completer = NULL;
static char **sl_candidates = NULL;
static int sl_next = 0;

static void sl_free_candidates(void) {
    if (!sl_candidates) return;
    for (int i = 0; sl_candidates[i]; i++) free(sl_candidates[i]);
    free(sl_candidates);
    sl_candidates = NULL;
}

static char *sl_generator(const char *text, int state) {
    (void)text;
    if (!sl_candidates) return NULL;
    if (state == 0) sl_next = 0;
    if (!sl_candidates[sl_next]) return NULL;
    return strdup(sl_candidates[sl_next++]);
}

static char **sl_attempt(const char *text, int start, int end) {
    (void)end;
    sl_free_candidates();
    if (!sl_completer) return NULL;
    char *upto = strndup(rl_line_buffer ? rl_line_buffer : "", (size_t)(start + (int)strlen(text)));
    sl_candidates = sl_completer(text, upto ? upto : "");
    free(upto);
    rl_attempted_completion_over = 1;   /* never fall back to file names */
    if (!sl_candidates || !sl_candidates[0]) return NULL;
    /* No space after a directory ("name/": its contents come next) nor inside a string (a
       remote name: the closing quote comes next). */
    size_t n0 = strlen(sl_candidates[0]);
    int in_string = 0;
    char quote = 0;
    for (int i = 0; rl_line_buffer && i < start && rl_line_buffer[i]; i++) {
        char ch = rl_line_buffer[i];
        if (quote) {
            if (ch == '\\' && rl_line_buffer[i + 1]) i++;
            else if (ch == quote) quote = 0;
        } else if (ch == '"' || ch == '\'') {
            quote = ch;
        }
    }
    in_string = quote != 0;
    rl_completion_append_character = (in_string || (!sl_candidates[1] && n0 > 0 && sl_candidates[0][n0 - 1] == '/')) ? '\0' : ' ';
    return rl_completion_matches(text, sl_generator);
}

void sl_edit_init(const char *histfile, sl_complete_fn complete) {
    sl_completer = complete;
    rl_readline_name = "sftplua";
    rl_attempted_completion_function = sl_attempt;
    /* Words break at Lua punctuation, but not at '.' and ':' (completed as paths) */
    rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^#~";
    using_history();
    if (histfile) read_history(histfile);
}

char *sl_edit_readline(const char *prompt) { return readline(prompt); }

void sl_edit_clear_input_error(void) { clearerr(stdin); }

void sl_edit_remember(const char *line, const char *histfile, int keep) {
    add_history(line);
    if (histfile) {
        write_history(histfile);
        history_truncate_file(histfile, keep);
    }
}

void sl_edit_write_line(const char *bytes, unsigned long n) {
    if (n > 0) fwrite(bytes, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}
