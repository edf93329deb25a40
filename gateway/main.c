/* main.c - the fieldgate command line. */
#include <stdio.h>
#include <string.h>

#include "gw_cli.h"

int main(int argc, char **argv)
{
    return gw_cli_main(argc, argv);
}
