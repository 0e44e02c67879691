package main

import (
	"github.com/spf13/cobra"

	"github.com/opsight/opsight/operator-sidecar/webhook"
)

func webhookCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "webhook",
		Short:              "Serve the admission webhook that injects the sidecar into annotated pods",
		DisableFlagParsing: true, // the webhook package parses its own flags
		RunE: func(cmd *cobra.Command, args []string) error {
			return webhook.Run(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}
