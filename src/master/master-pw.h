/* master-pw.h — `ringgate pw`: make a stored password as Dovecot's
 * `doveadm pw` does (-s scheme, -p password, -r rounds, -t verify a hash,
 * -l list the schemes). Needs no configuration file. */
#ifndef RG_MASTER_PW_H
#define RG_MASTER_PW_H

/* argv[0] is "pw"; returns the exit code */
int master_pw_main(int argc, char **argv);

#endif
